// Hubble's discovery API, peer.Peer/Notify, both ways:
//
// - PeerNotifyService serves it: each Notify stream first gets PEER_ADDED for every node the
//   source knows, then PEER_ADDED / PEER_UPDATED / PEER_DELETED as the source changes (polled).
//   The observer serves its own node and the nodes of its cluster source; the relay its peers.
//   Hubble's `hubble watch peers` and a Hubble relay's peer discovery read it.
// - PeerNotifyClient reads it: the relay's `--peer-service` keeps the set of nodes another
//   server announces (reconnecting when the stream breaks), as Hubble's relay does.
//
// Both are thread-safe; every stream and thread they start ends in Shutdown()/Stop() (the
// destructors call them).
//
//   PeerNotifyService peers([&] { return std::vector<PeerEntry>{{"node-1", "10.0.0.1:4244"}}; });
//   GrpcServer::Start({&observer, &peers}, listen);
#ifndef FLOWSCOPE_API_PEER_SERVICE_H_
#define FLOWSCOPE_API_PEER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "peer/peer.grpc.pb.h"

namespace flowscope {

struct PeerEntry {
  std::string name;             // the node's name
  std::string address;          // "10.0.0.2:4244", "10.0.0.2" (Hubble's default port), unix://…
  std::string tls_server_name;  // the name its certificate carries, when it serves TLS
  bool operator==(const PeerEntry&) const = default;
};

using PeerSource = std::function<std::vector<PeerEntry>()>;

class PeerNotifyService final : public peer::Peer::CallbackService {
 public:
  // `source` is called from the service's thread every `poll` (and once now); entries with an
  // empty name are left out, and of two with one name the first counts.
  explicit PeerNotifyService(PeerSource source, absl::Duration poll = absl::Seconds(1),
                             size_t max_queued = 4096);
  ~PeerNotifyService() override;
  PeerNotifyService(const PeerNotifyService&) = delete;
  PeerNotifyService& operator=(const PeerNotifyService&) = delete;

  grpc::ServerWriteReactor<peer::ChangeNotification>* Notify(
      grpc::CallbackServerContext* ctx, const peer::NotifyRequest* req) override;

  // Reads the source now and sends what changed (the thread does it every `poll`).
  void Poll();
  // Stops polling and ends every open stream (OK). The gRPC server may still be running.
  void Shutdown();
  size_t streams() const;

 private:
  class Stream;
  void Run();
  void Remove(Stream* s);
  void ReapLocked();  // deletes the streams whose calls are done; requires mu_

  const PeerSource source_;
  const absl::Duration poll_;
  const size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::map<std::string, PeerEntry> current_;  // by name
  std::set<Stream*> streams_;
  std::mutex done_mu_;  // after mu_
  std::condition_variable done_cv_;
  std::vector<Stream*> done_;  // OnDone was called; deleted by ReapLocked
  std::thread thread_;
};

// What a Notify stream says, kept current. Addresses without a port get Hubble's 4244.
class PeerNotifyClient {
 public:
  PeerNotifyClient(std::shared_ptr<grpc::Channel> channel, std::string target);
  ~PeerNotifyClient();
  PeerNotifyClient(const PeerNotifyClient&) = delete;
  PeerNotifyClient& operator=(const PeerNotifyClient&) = delete;

  void Start();
  void Stop();

  // The nodes announced and not deleted since, by name.
  std::vector<PeerEntry> Peers() const;
  // Waits until a stream has said something (true) or `timeout` passed (false).
  bool WaitForAnswer(absl::Duration timeout) const;
  // Whether the stream is open now, and what broke it last ("" if nothing).
  bool connected() const;
  std::string last_error() const;

 private:
  void Run();

  const std::shared_ptr<grpc::Channel> channel_;
  const std::string target_;
  mutable std::mutex mu_;
  mutable std::condition_variable wake_;  // stop, and each notification read
  bool stop_ = false;
  bool connected_ = false;
  bool answered_ = false;
  std::string last_error_;
  grpc::ClientContext* ctx_ = nullptr;  // the open call's, to cancel it on Stop
  std::map<std::string, PeerEntry> peers_;
  std::thread thread_;
};

// Hubble's default port for an address announced without one: "10.0.0.2" -> "10.0.0.2:4244",
// "fd00::2" -> "[fd00::2]:4244"; addresses with a port or a scheme stay as they are.
std::string WithDefaultPeerPort(const std::string& address);

}  // namespace flowscope

#endif  // FLOWSCOPE_API_PEER_SERVICE_H_
