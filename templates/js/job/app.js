// {{name}}: a job for Skiff, built into a WebAssembly component by componentize-js.
//
// Skiff runs the component once: it calls `run.run()`; the Job succeeds when it returns and
// fails when it throws. Whatever console.log prints goes to the pod's log (`kubectl logs`).

export const run = {
  run() {
    console.log('{{name}}: hello from a Skiff job (javascript)');
    console.log('{{name}}: done');
  },
};
