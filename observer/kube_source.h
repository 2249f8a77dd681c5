// KubernetesEndpointSource: the endpoint table fed from the Kubernetes API server, as Cilium's
// agent sees the cluster: Pods (addresses → namespace, name, labels, workload, node), Namespaces
// (their labels join their pods' as io.cilium.k8s.namespace.labels.*), Nodes (other nodes'
// addresses are the remote-node identity; labels for node_labels) and Services (cluster IPs and
// ports).
//
// Each resource is a reflector on its own thread, with client-go's semantics: a paged list
// (`limit`/`continue`, restarted if the continue token expires), then a watch from the list's
// resourceVersion with bookmarks; a clean end of the watch → watch again from the last version
// seen; a dropped connection → resume from it after a backoff; `410 Gone` (an HTTP status or an
// ERROR event) → list again, replacing what was held, so nothing stale survives; failures back off
// exponentially with jitter. A malformed object or event is skipped, counted and logged (once per
// resource). Changes reach the table in batches (at most one Update per publish_delay), so a
// burst of events costs one rebuild.
//
// Two pods claiming one address (a pod IP reused before the old pod is gone): the pod not being
// deleted wins, then the newer one. Host-network pods and finished pods (Succeeded, Failed) hold
// no address. The observer serves flows from the start; names appear once the lists are in.
//
// Start/Stop from one thread; the rest from any.
#ifndef FLOWSCOPE_OBSERVER_KUBE_SOURCE_H_
#define FLOWSCOPE_OBSERVER_KUBE_SOURCE_H_

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "observer/endpoint_source.h"
#include "observer/kube_client.h"
#include "observer/kube_objects.h"

namespace flowscope::observer {

struct KubeSourceOptions {
  std::string node_name = {};  // this node: its address is the host, not a remote node
  std::string cluster_name = "default";
  int page_size = 500;
  absl::Duration request_timeout = absl::Seconds(30);
  // Asked of the server per watch (timeoutSeconds), spread by up to 2× so watches do not expire
  // together; a silent connection is given up after this plus a minute.
  absl::Duration watch_timeout = absl::Minutes(5);
  absl::Duration min_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(30);
  absl::Duration publish_delay = absl::Milliseconds(50);
};

class KubernetesEndpointSource final : public EndpointSource {
 public:
  struct Stats {
    uint64_t lists = 0;    // complete lists (all pages)
    uint64_t pages = 0;    // list requests
    uint64_t watches = 0;  // watch requests
    uint64_t events = 0;   // watch events applied (bookmarks included)
    uint64_t bookmarks = 0;
    uint64_t relists = 0;    // lists caused by 410 Gone
    uint64_t errors = 0;     // failed requests and broken watches
    uint64_t malformed = 0;  // objects and events skipped
    uint64_t publishes = 0;  // table updates
    std::string last_error;
  };

  KubernetesEndpointSource(std::unique_ptr<KubeClient> client, EndpointTable& table,
                           KubeSourceOptions options);
  ~KubernetesEndpointSource() override;

  // Starts the reflectors; never fails for an unreachable server (they retry).
  absl::Status Start() override;
  void Stop() override;

  // "" once every resource has been listed and the table updated from them; otherwise what is
  // still missing.
  std::string NotSynced() const;
  Stats stats() const;

  // What the source holds now, for GetNodes, node_labels and services.
  std::vector<KubeNode> Nodes() const;
  std::vector<KubeService> Services() const;

  class Reflector;

 private:
  friend class Reflector;
  void MarkDirty();
  void PublishLoop();
  void Publish();
  void CountError(const std::string& resource, const std::string& message);
  void CountMalformed(const std::string& resource, const std::string& message);

  std::unique_ptr<KubeClient> client_;
  EndpointTable& table_;
  const KubeSourceOptions options_;

  mutable std::mutex mu_;  // the stores below and the stats
  std::condition_variable wake_;
  bool stop_ = false;
  bool dirty_ = false;
  std::map<std::string, KubePod> pods_;
  absl::flat_hash_set<LabelSet, absl::Hash<LabelSet>> pod_labels_;  // shared label lists
  std::map<std::string, KubeNamespace> namespaces_;
  std::map<std::string, KubeNode> nodes_;
  std::map<std::string, KubeService> services_;
  Stats stats_;
  std::vector<std::string> logged_malformed_;  // resources whose first malformed item was logged
  bool all_listed_ = false;
  std::vector<std::unique_ptr<Reflector>> reflectors_;
  std::thread publisher_;
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_KUBE_SOURCE_H_
