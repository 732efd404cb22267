"""The seed's no-op scoring script: POST {"name": "X"} -> {"GoAway": "X's not here."}.

Azure ML contract: init() runs once per instance, run(raw_data) once per request.
"""

import json
import os
import pickle

model = None


def init():
    global model
    # As on Azure ML, a model registered from a folder keeps its folder name under AZUREML_MODEL_DIR.
    model_dir = os.environ.get("AZUREML_MODEL_DIR", "")
    for path in (os.path.join(model_dir, "model", "model.pkl"), os.path.join(model_dir, "model.pkl")):
        if os.path.exists(path):
            with open(path, "rb") as handle:
                model = pickle.load(handle)
            break


def run(raw_data):
    name = json.loads(raw_data)["name"]
    return {"GoAway": f"{name}'s not here."}
