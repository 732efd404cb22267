"""Iris species from flower measurements, with the scikit-learn model trained by ../train.py.

POST {"data": [[sepal length, sepal width, petal length, petal width], ...]}  (centimetres)
  -> {"predictions": ["setosa", ...]}
with "return_probabilities": true, also "probabilities": [[p_setosa, p_versicolor, p_virginica], ...]

Azure ML contract: init() once per instance (load the model from AZUREML_MODEL_DIR), run() per request.
"""

import json
import os

import joblib
import numpy as np

MAX_ROWS = 1000
bundle = None


def init():
    global bundle
    # A model registered from a folder keeps its folder name under AZUREML_MODEL_DIR.
    bundle = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.joblib"))


def run(raw_data):
    request = json.loads(raw_data)
    rows = request["data"]
    if not isinstance(rows, list) or not 0 < len(rows) <= MAX_ROWS:
        raise ValueError(f"data must be a list of 1 to {MAX_ROWS} rows of {len(bundle['features'])} numbers")
    features = np.asarray(rows, dtype=float).reshape(len(rows), len(bundle["features"]))
    model = bundle["model"]
    labels = [bundle["classes"][i] for i in model.predict(features)]
    if request.get("return_probabilities"):
        return {"predictions": labels, "probabilities": np.round(model.predict_proba(features), 4).tolist()}
    return {"predictions": labels}
