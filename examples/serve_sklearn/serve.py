"""The serving side: a new machine with an empty HOME, no clone, only the git URL of the model repository
and credentials for S3 in its environment. Loads whatever version holds the prod stage and predicts.

    python serve.py GIT_URL
"""

import json
import sys

import mvc

url = sys.argv[1]
# joblib files run code when loaded: trust=True says we trust who committed this model
model = mvc.load("price#prod", repo=url, trust=True)
probe = [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]
json.dump(model.predict(probe).tolist(), sys.stdout)
