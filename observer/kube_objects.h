// The fields flowscope keeps of Kubernetes objects (core/v1 Pod, Namespace, Node, Service), read
// from their JSON defensively: a field of the wrong type is an error naming the object and the
// field, never a crash. Only what flows need is kept (memory per pod stays small).
#ifndef FLOWSCOPE_OBSERVER_KUBE_OBJECTS_H_
#define FLOWSCOPE_OBSERVER_KUBE_OBJECTS_H_

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "observer/endpoint_table.h"

namespace flowscope::observer {

// namespace/name (name alone for cluster-scoped objects) and the resourceVersion.
struct KubeObjectRef {
  std::string key;
  std::string resource_version;
};

struct KubePod {
  std::string namespace_name;
  std::string name;
  std::vector<std::string> ips;  // status.podIPs (status.podIP when absent)
  LabelSet labels;               // "key=value" (shared: a workload's replicas have the same)
  std::string workload_name;     // from the controller reference (see DeriveWorkload)
  std::string workload_kind;
  std::string node_name;
  std::string service_account;
  int64_t created = 0;  // metadata.creationTimestamp, Unix seconds (0: unknown)
  bool host_network = false;
  bool terminated = false;  // phase Succeeded or Failed: its addresses are free again
  bool deleting = false;    // metadata.deletionTimestamp set
};

struct KubeNamespace {
  std::string name;
  std::vector<std::string> labels;
};

struct KubeNode {
  std::string name;
  std::vector<std::string> labels;
  std::vector<std::string> ips;  // InternalIP and ExternalIP addresses
};

struct KubeServicePort {
  uint16_t port = 0;
  std::string protocol;  // TCP, UDP, SCTP
};

struct KubeService {
  std::string namespace_name;
  std::string name;
  std::vector<std::string> cluster_ips;  // "None" (headless) left out
  std::vector<KubeServicePort> ports;
};

absl::StatusOr<KubeObjectRef> ParseObjectRef(const nlohmann::json& object, bool namespaced);
absl::StatusOr<KubePod> ParsePod(const nlohmann::json& object);
absl::StatusOr<KubeNamespace> ParseNamespace(const nlohmann::json& object);
absl::StatusOr<KubeNode> ParseNode(const nlohmann::json& object);
absl::StatusOr<KubeService> ParseService(const nlohmann::json& object);

// The workload that owns a pod, as Cilium names it: the controller reference, with a
// ReplicaSet whose name is "<deployment>-<pod-template-hash>" reported as that Deployment and a
// Job named "<cronjob>-<scheduled time>" as that CronJob. {"", ""} without a controller.
std::pair<std::string, std::string> DeriveWorkload(const std::string& owner_kind,
                                                   const std::string& owner_name,
                                                   const std::string& pod_template_hash);

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_KUBE_OBJECTS_H_
