"""One worker process of the speed_up grader: loads a module's function and runs it on request.

Protocol on stdin/stdout, one line each: the worker first answers {"ready": true} (or
{"error": ...}); then each request `R <JSON list>` runs the function on that list and is
answered {"result": ...} or {"error": ...}. The grader times each request from its own process,
so nothing the loaded code does to its clocks can change the measurement.
"""

import importlib.util
import json
import os
import sys
import traceback


def main():
    path, name = sys.argv[1], sys.argv[2]
    # The protocol keeps the real stdout; anything the loaded code prints goes to stderr.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(obj):
        channel.write(json.dumps(obj) + "\n")
        channel.flush()

    try:
        spec = importlib.util.spec_from_file_location("submission", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        function = getattr(module, name)
        if not callable(function):
            raise TypeError(f"{name} is not a function")
    except BaseException as err:  # noqa: BLE001 - any failure of foreign code is reported
        send({"error": f"cannot load {name}: {type(err).__name__}: {err}"})
        return
    send({"ready": True})
    for line in sys.stdin:
        if not line.startswith("R "):
            send({"error": f"unknown request {line[:20]!r}"})
            continue
        values = json.loads(line[2:])
        try:
            result = function(values)
        except BaseException as err:  # noqa: BLE001
            tail = traceback.format_exc(limit=-2)[-400:]
            send({"error": f"{type(err).__name__}: {err} | {tail}"})
            continue
        try:
            send({"result": result})
        except (TypeError, ValueError):
            send({"error": f"the result is not a JSON number: {type(result).__name__}"})


if __name__ == "__main__":
    main()
