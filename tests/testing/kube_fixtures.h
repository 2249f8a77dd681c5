// Kubernetes objects for tests, as the API server returns them (valid for real clients too:
// python3-kubernetes refuses a pod without containers).
//
//   server->Apply("pods", testing::KubePod("default", "xwing", "10.0.1.10"));
#ifndef FLOWSCOPE_TESTS_TESTING_KUBE_FIXTURES_H_
#define FLOWSCOPE_TESTS_TESTING_KUBE_FIXTURES_H_

#include <nlohmann/json.hpp>
#include <string>

namespace flowscope::testing {

inline nlohmann::json KubePod(const std::string& ns, const std::string& name, const std::string& ip,
                              const std::string& node = "node-1", nlohmann::json labels = nullptr) {
  if (labels.is_null()) labels = {{"app", name}};
  return {{"metadata", {{"name", name}, {"namespace", ns}, {"labels", labels}}},
          {"spec",
           {{"nodeName", node},
            {"serviceAccountName", "default"},
            {"containers", {{{"name", "main"}, {"image", "busybox"}}}}}},
          {"status", {{"phase", "Running"}, {"podIP", ip}, {"podIPs", {{{"ip", ip}}}}}}};
}

// A pod of a Deployment: owned by the ReplicaSet "<deployment>-<hash>".
inline nlohmann::json KubeDeploymentPod(const std::string& ns, const std::string& deployment,
                                        const std::string& name, const std::string& ip,
                                        const std::string& node = "node-1") {
  nlohmann::json p =
      KubePod(ns, name, ip, node, {{"app", deployment}, {"pod-template-hash", "5d8f7c9b6"}});
  p["metadata"]["ownerReferences"] = {{{"apiVersion", "apps/v1"},
                                       {"kind", "ReplicaSet"},
                                       {"name", deployment + "-5d8f7c9b6"},
                                       {"uid", "rs-" + deployment},
                                       {"controller", true}}};
  return p;
}

inline nlohmann::json KubeNamespace(const std::string& name, nlohmann::json labels = nullptr) {
  if (labels.is_null()) labels = {{"kubernetes.io/metadata.name", name}};
  return {{"metadata", {{"name", name}, {"labels", labels}}}};
}

inline nlohmann::json KubeNode(const std::string& name, const std::string& ip,
                               nlohmann::json labels = nullptr) {
  if (labels.is_null()) labels = {{"kubernetes.io/hostname", name}};
  return {
      {"metadata", {{"name", name}, {"labels", labels}}},
      {"status",
       {{"addresses",
         {{{"type", "InternalIP"}, {"address", ip}}, {{"type", "Hostname"}, {"address", name}}}}}}};
}

inline nlohmann::json KubeService(const std::string& ns, const std::string& name,
                                  const std::string& cluster_ip, int port,
                                  const std::string& protocol = "TCP") {
  return {{"metadata", {{"name", name}, {"namespace", ns}}},
          {"spec",
           {{"clusterIP", cluster_ip},
            {"clusterIPs", {cluster_ip}},
            {"ports", {{{"port", port}, {"protocol", protocol}}}}}}};
}

// A kubeconfig whose current context reaches `server` (an https URL) with the CA in `ca_file` and
// a bearer token.
inline std::string KubeconfigFor(const std::string& server, const std::string& ca_file,
                                 const std::string& token) {
  return "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: " +
         server + "\n    certificate-authority: " + ca_file +
         "\nusers:\n- name: tester\n  user:\n    token: " + token +
         "\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: tester\n"
         "current-context: test\n";
}

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_KUBE_FIXTURES_H_
