// Validates Kubernetes objects against Kubernetes' own OpenAPI schemas, through the npm package
// kubernetes-models (and @kubernetes-models/prometheus-operator for ServiceMonitor), whose
// objects validate themselves. Input: a JSON array of objects on stdin (the chart's rendered
// manifests). Prints one line per object; exits 1 if any is invalid or of an unknown kind.
'use strict';

const groups = {
  'v1': 'kubernetes-models/v1',
  'apps/v1': 'kubernetes-models/apps/v1',
  'rbac.authorization.k8s.io/v1': 'kubernetes-models/rbac.authorization.k8s.io/v1',
  'monitoring.coreos.com/v1': '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1',
};

let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const objects = JSON.parse(input).filter((o) => o !== null);
  let failed = 0;
  for (const o of objects) {
    const what = `${o.apiVersion} ${o.kind} ${o.metadata && o.metadata.name}`;
    const base = groups[o.apiVersion];
    if (!base) {
      console.log(`INVALID ${what}: no schema known for this apiVersion`);
      failed++;
      continue;
    }
    try {
      const Model = require(`${base}/${o.kind}`)[o.kind];
      new Model(o).validate();
      console.log(`valid ${what}`);
    } catch (e) {
      console.log(`INVALID ${what}: ${e.message}`);
      failed++;
    }
  }
  if (objects.length === 0) {
    console.log('INVALID: no objects');
    failed++;
  }
  process.exit(failed ? 1 : 0);
});
