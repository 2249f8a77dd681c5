// Listener: flowscope's own accept loop in front of gRPC for the plaintext listeners (the unix
// socket, a TCP address without TLS). gRPC 1.51's listener stops accepting for good after one
// failed accept4() (EMFILE); this one never does. It binds exclusively (no SO_REUSEPORT, so a
// second daemon on the same port is an "address already in use" error rather than a thief of
// connections), creates a unix socket with its final mode (never wider than 0660, whatever the
// umask), and hands each accepted connection to the gRPC server. At the open-file limit, and
// when the lowest free descriptor shows the process is within `reserve` of it, a new
// connection is accepted and closed at once (counted, logged once per episode), so the
// daemon's own files, sockets and BPF maps never meet EMFILE; once connections close, new ones
// are served again.
//
// Thread-safety: Bind*/Start/Stop from one thread; stats() from any. One thread of its own.
#ifndef FLOWSCOPE_API_LISTENER_H_
#define FLOWSCOPE_API_LISTENER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace flowscope {

struct ListenerStats {
  uint64_t accepted = 0;
  uint64_t refused = 0;  // closed at once: at or near the open-file limit
};

class Listener {
 public:
  // A unix socket at `path` (a stale one is replaced; see PrepareUnixSocket), mode 0660.
  static absl::StatusOr<std::unique_ptr<Listener>> BindUnix(const std::string& path);
  // "host:port", "[v6]:port", or ":port" (every interface, IPv6 and IPv4); port 0 picks one.
  static absl::StatusOr<std::unique_ptr<Listener>> BindTcp(const std::string& address);
  ~Listener();

  // Serves accepted connections to `server` until Stop(). `server` outlives the listener's
  // thread (Stop() before the server shuts down).
  void Start(grpc::Server* server);
  // Stops accepting and closes the listening socket (and removes a unix socket's file).
  void Stop();

  // What is bound: "/var/run/flowscope/observer.sock", "127.0.0.1:4245", "[::]:4245".
  const std::string& bound() const { return bound_; }
  int port() const { return port_; }
  ListenerStats stats() const;

 private:
  Listener() = default;
  void Run(grpc::Server* server);
  void Refuse(int fd, const char* why);

  int fd_ = -1;
  int wake_fd_ = -1;   // eventfd: Stop() wakes the accept loop
  int spare_fd_ = -1;  // given up to accept (and close) a connection at EMFILE
  std::string unix_path_;
  std::string bound_;
  int port_ = 0;
  int max_fd_ = 0;  // a new connection's descriptor must stay below this
  bool refusing_ = false;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> refused_{0};
  std::thread thread_;
};

// Raises the soft limit on open files to the hard limit (daemons call it at start); returns
// the soft limit in force.
uint64_t RaiseOpenFileLimit();

// Binds `address` ("host:port") exclusively for a moment and releases it: the real reason
// (address already in use, permission denied, no such address) when a listener could not
// bind it, before gRPC tries and says only that it failed.
absl::Status CheckTcpAddressFree(const std::string& address);

}  // namespace flowscope

#endif  // FLOWSCOPE_API_LISTENER_H_
