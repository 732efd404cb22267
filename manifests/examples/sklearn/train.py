"""Train the iris classifier served by manifests/examples/local-sklearn.yaml; writes model/model.joblib.

The iris data ships inside scikit-learn, so training needs no download. Run it in an environment
with the same packages as conda.yaml (the model file is a pickle: load it with the scikit-learn
version that wrote it), for example:

    uv run --no-project --with-requirements manifests/examples/sklearn/requirements.txt \
        python manifests/examples/sklearn/train.py

Deterministic (fixed split and solver), so re-running it writes an equivalent model.
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent


def main() -> None:
    iris = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(iris.data, iris.target, test_size=0.25, random_state=0,
                                                        stratify=iris.target)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x_train, y_train)
    accuracy = model.score(x_test, y_test)
    out = HERE / "model"
    out.mkdir(exist_ok=True)
    joblib.dump({"model": model, "classes": [str(c) for c in iris.target_names],
                 "features": [str(f) for f in iris.feature_names]},
                out / "model.joblib")
    (out / "metadata.json").write_text(json.dumps({
        "dataset": "sklearn.datasets.load_iris", "estimator": "StandardScaler + LogisticRegression",
        "test_accuracy": round(accuracy, 4), "scikit_learn": sklearn.__version__,
        "features": [str(f) for f in iris.feature_names],
        "classes": [str(c) for c in iris.target_names]}, indent=2) + "\n")
    print(f"test accuracy {accuracy:.3f}; wrote {out / 'model.joblib'}")


if __name__ == "__main__":
    main()
