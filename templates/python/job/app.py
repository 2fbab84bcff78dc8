"""{{name}}: a job for Skiff, built into a WebAssembly component by componentize-py.

Skiff runs the component once (`Run.run`); the Job succeeds when it returns and fails when it
raises. Whatever is printed goes to the pod's log (`kubectl logs`).
"""

from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        print("{{name}}: hello from a Skiff job (python)", flush=True)
        print("{{name}}: done", flush=True)
