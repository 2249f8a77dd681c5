// KubeApiServer: a stand-in for kube-apiserver that speaks its wire protocol for the core/v1
// resources flowscope reads (pods, services, nodes, namespaces), so the Kubernetes endpoint
// source is tested against what a real cluster sends. Proven faithful by real clients
// (kubectl, python3-kubernetes) in tests/observer/kube_apiserver_test.cc.
//
// What it serves, as kube-apiserver does:
// - discovery: /version, /api, /apis, /api/v1 (legacy discovery; kubectl falls back to it);
// - lists: /api/v1/<resource> and /api/v1/namespaces/<ns>/<resource>, JSON `<Kind>List` with
//   metadata.resourceVersion; paging with `limit` and `continue` (an expired continue token
//   after Compact() is a 410 Expired Status); `fieldSelector` on metadata.name,
//   metadata.namespace and spec.nodeName; single objects by name;
// - watches (`watch=1|true`): chunked newline-delimited JSON events ADDED/MODIFIED/DELETED from
//   the given resourceVersion (none or "0": the current objects as ADDED first), BOOKMARK events
//   when `allowWatchBookmarks=true` (on SendBookmarks() or every bookmark_interval), an ERROR
//   event with a 410 Status for a resourceVersion older than the last Compact(), the stream
//   closed after `timeoutSeconds`, objects leaving or entering a field selector as
//   DELETED/ADDED;
// - bearer-token authentication (401 Status otherwise) over HTTPS when given a certificate;
// - Table output (`Accept: ...;as=Table;g=meta.k8s.io`) for pods, nodes, namespaces and
//   services, as kubectl asks for it.
//
// Test controls: Apply/Delete objects, PutRawObject (a malformed item in lists), SendRawEvent
// (a malformed watch line), Compact, CutWatches (drop every watch connection), HoldWatches,
// SetToken, and
// request counters. Lists are served from the current state, not a snapshot at the first
// page's resourceVersion (a client that watches from that version converges either way).
#ifndef FLOWSCOPE_TESTS_TESTING_KUBE_APISERVER_H_
#define FLOWSCOPE_TESTS_TESTING_KUBE_APISERVER_H_

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace flowscope::testing {

class KubeApiServer {
 public:
  struct Options {
    std::string address = "127.0.0.1";
    int port = 0;                // 0: any free port
    std::string cert_file = {};  // with key_file: HTTPS
    std::string key_file = {};
    std::string token = {};  // the bearer token required; empty: none
    absl::Duration bookmark_interval = absl::ZeroDuration();  // zero: only on SendBookmarks()
  };

  struct Counters {
    int lists = 0;    // list requests (pages counted one by one)
    int watches = 0;  // watch requests
    int unauthorized = 0;
    int active_watches = 0;
  };

  static absl::StatusOr<std::unique_ptr<KubeApiServer>> Start(const Options& options);
  ~KubeApiServer();
  KubeApiServer(const KubeApiServer&) = delete;
  KubeApiServer& operator=(const KubeApiServer&) = delete;

  int port() const;
  std::string url() const;  // https://127.0.0.1:<port> (or http://)

  // Creates or replaces an object ("pods", "services", "nodes", "namespaces"); the server sets
  // metadata.resourceVersion, and uid/creationTimestamp when missing. Returns the new version.
  uint64_t Apply(const std::string& resource, nlohmann::json object);
  // Many at once (one version each), faster for large fixtures.
  uint64_t ApplyAll(const std::string& resource, const std::vector<nlohmann::json>& objects);
  // Deletes an object; false if there was none.
  bool Delete(const std::string& resource, const std::string& ns, const std::string& name);
  // A list item that is not a valid object (served verbatim in lists).
  void PutRawObject(const std::string& resource, const std::string& key, const std::string& raw);
  // A line sent verbatim to every watch of `resource`.
  void SendRawEvent(const std::string& resource, const std::string& line);
  void SendBookmarks();
  // Forgets the history up to now: watches from older versions and continue tokens get 410.
  void Compact();
  // Closes every open watch connection (as a load balancer or apiserver restart would).
  void CutWatches();
  void SetToken(const std::string& token);
  // While held, watch requests wait before they are answered (a slow or restarting server).
  void HoldWatches(bool hold);
  uint64_t resource_version() const;
  Counters counters() const;

  class Impl;

 private:
  explicit KubeApiServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_KUBE_APISERVER_H_
