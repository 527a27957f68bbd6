"""The training side: fit a model, save it with mvc, push it to the remote, register it and give it the
prod stage. Runs inside a clone of the model repository (the current directory), as a training job would."""

import json
import subprocess
import sys

import numpy as np
from sklearn.linear_model import LinearRegression

import mvc

rng = np.random.default_rng(7)
X = rng.normal(size=(200, 3))
y = X @ np.array([3.0, -2.0, 0.5]) + 1.0 + rng.normal(scale=0.01, size=200)
model = LinearRegression().fit(X, y)

# writes model.joblib, adds it (the pointer records framework and library versions), names it "price"
mvc.save(model, "model.joblib", name="price", meta={"r2": round(float(model.score(X, y)), 4)})
subprocess.run(["git", "commit", "-q", "-m", "Train the price model"], check=True)
mvc.push()  # the weights go to the S3 remote of .mvc/config.toml
mvc.register("price")  # price@v0.0.1
mvc.assign("price", "prod")  # price#prod#1
subprocess.run(["git", "push", "-q", "origin", "HEAD", "--tags"], check=True)

probe = [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]
json.dump(model.predict(probe).tolist(), sys.stdout)
