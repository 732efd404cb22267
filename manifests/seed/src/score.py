"""The seed's no-op scoring script: POST {"name": "X"} -> {"GoAway": "X's not here."}.

Azure ML contract: init() runs once per instance, run(raw_data) once per request.
"""

import json
import os
import pickle

model = None


def init():
    global model
    model_dir = os.environ.get("AZUREML_MODEL_DIR", "")
    path = os.path.join(model_dir, "model.pkl")
    if os.path.exists(path):
        with open(path, "rb") as handle:
            model = pickle.load(handle)


def run(raw_data):
    name = json.loads(raw_data)["name"]
    return {"GoAway": f"{name}'s not here."}
