// PeerPool: the observers a relay talks to. Peers come from a static list (`host:port`,
// `unix:///path`), from DNS names re-resolved periodically (one peer per A/AAAA record, as a
// Kubernetes headless Service gives), and from a file of addresses re-read when it changes.
// Each peer has one gRPC channel; its node name is asked from the peer (GetNodes), not derived
// from the address. Peers that disappear from discovery are closed. A background thread keeps
// it all current; Snapshot() and ReportOffline() may be called from any thread.
#ifndef FLOWSCOPE_RELAY_PEER_POOL_H_
#define FLOWSCOPE_RELAY_PEER_POOL_H_

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "api/peer_service.h"
#include "api/tls.h"

namespace flowscope::relay {

struct PoolOptions {
  std::vector<std::string> static_peers;  // host:port or unix:///path
  std::vector<std::string> dns_peers;     // name:port, re-resolved every refresh
  std::string peers_file;                 // one address per line ('#' comments)
  // A peer.Peer/Notify server (Hubble's discovery API: a flowscope observer or relay, a Cilium
  // agent) whose announced nodes are peers too, as Hubble's relay --peer-service.
  std::string peer_service;
  absl::Duration refresh = absl::Seconds(1);
  absl::Duration dial_timeout = absl::Seconds(5);
  // Called (from the pool's thread) whenever the number of available peers changes.
  std::function<void(int available)> on_change;
  // TLS towards TCP peers (unix sockets stay plaintext); none: plaintext. Validated by
  // ClientTlsCredentials before the pool starts.
  std::optional<TlsClientOptions> tls;
};

struct Peer {
  std::string address;  // as discovered
  std::string name;     // the node's own name, or the address until it told us
  std::string version;
  bool available = false;       // channel READY or IDLE
  bool tls = false;             // the channel uses TLS
  std::string tls_server_name;  // the name its certificate is checked against, if set
  std::shared_ptr<grpc::Channel> channel;
};

// The peers file: one address per line ("host:port", "unix:///path"); blank lines and lines
// starting with '#' are skipped, surrounding whitespace is not part of an address.
std::vector<std::string> ParsePeerList(absl::string_view text);

class PeerPool {
 public:
  explicit PeerPool(PoolOptions options);
  ~PeerPool();
  PeerPool(const PeerPool&) = delete;
  PeerPool& operator=(const PeerPool&) = delete;

  // Discovers once (synchronously), then keeps refreshing on a thread until Stop().
  void Start();
  void Stop();

  // Every known peer, sorted by name.
  std::vector<Peer> Snapshot() const;

  // A query found `address` down: try to reconnect now rather than after backoff.
  void ReportOffline(const std::string& address);

  // The addresses discovery yields now (static + DNS + file), deduplicated and sorted. A DNS
  // name that cannot be resolved for now, or a peers file that cannot be read, contributes what
  // it did last time (a name with no records, or an empty file, contributes nothing).
  std::vector<std::string> Discover() const;

 private:
  void Refresh();
  void Run();
  // TLS (options_.tls) towards TCP addresses, plaintext to unix sockets; an error rather than
  // plaintext when the TLS files cannot be read.
  bool UsesTls(const std::string& address) const;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(const std::string& address) const;

  const PoolOptions options_;
  std::unique_ptr<PeerNotifyClient> notify_;  // --peer-service
  mutable std::mutex discover_mu_;
  // The last answer of each DNS name and of the peers file.
  mutable std::map<std::string, std::vector<std::string>> last_good_;
  mutable std::set<std::string> failing_;  // sources whose failure was already logged
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::map<std::string, Peer> peers_;  // by address
  bool stop_ = false;
  bool refresh_now_ = false;
  int last_available_ = -1;
  std::thread thread_;
};

}  // namespace flowscope::relay

#endif  // FLOWSCOPE_RELAY_PEER_POOL_H_
