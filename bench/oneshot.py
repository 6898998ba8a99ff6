"""The untraced baseline of a CLI run: one urllib3 POST of the same request, as small as a client gets.

    FLOWEXEC_URL=... FLOWEXEC_TOKEN=... python bench/oneshot.py
"""

import json
import os
import sys

import urllib3

response = urllib3.PoolManager().request(
    "POST", os.environ["FLOWEXEC_URL"] + "/api/executions/",
    body=json.dumps({"flow": "bench-two", "inputs": {"name": "bench"}}).encode(),
    headers={"Authorization": f"Token {os.environ['FLOWEXEC_TOKEN']}", "Content-Type": "application/json"},
    timeout=30,
)
print(json.loads(response.data).get("outputs"))
sys.exit(0 if response.status in (200, 201) else 1)
