#include "api/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/server_posix.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "api/grpc_server.h"
#include "api/logging.h"

namespace flowscope {
namespace {

struct TcpAddress {
  std::string host;  // "" for every interface
  std::string port;
};

absl::StatusOr<TcpAddress> SplitHostPort(const std::string& address) {
  TcpAddress a;
  if (!address.empty() && address[0] == '[') {
    const size_t close = address.find("]:");
    if (close == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid address \"", address, "\": expected [v6-address]:port"));
    }
    a.host = address.substr(1, close - 1);
    a.port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid address \"", address, "\": expected host:port or :port"));
    }
    a.host = address.substr(0, colon);
    a.port = address.substr(colon + 1);
  }
  if (a.port.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("invalid address \"", address, "\": no port"));
  }
  return a;
}

std::string SockaddrText(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return absl::StrCat("[", host, "]:", ntohs(in6->sin6_port));
  }
  const auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
  inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
  return absl::StrCat(host, ":", ntohs(in4->sin_port));
}

// Binds a listening TCP socket to the first address `address` resolves to (every interface,
// IPv6 with IPv4 mapped, for ":port"), without SO_REUSEPORT.
absl::StatusOr<int> BindTcpSocket(const std::string& address, std::string* bound, int* port) {
  auto hp = SplitHostPort(address);
  if (!hp.ok()) return hp.status();
  addrinfo hints{};
  hints.ai_family = hp->host.empty() ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  int rc =
      getaddrinfo(hp->host.empty() ? nullptr : hp->host.c_str(), hp->port.c_str(), &hints, &found);
  if (rc != 0 && hp->host.empty()) {  // no IPv6 here: every IPv4 interface
    hints.ai_family = AF_INET;
    rc = getaddrinfo(nullptr, hp->port.c_str(), &hints, &found);
  }
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot listen on ", address, ": ", gai_strerror(rc)));
  }
  absl::Status last = absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      last = absl::ErrnoToStatus(errno, absl::StrCat("cannot listen on ", address));
      continue;
    }
    const int one = 1;
    const int zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // TIME_WAIT, not sharing
    if (a->ai_family == AF_INET6 && hp->host.empty()) {
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
      last = absl::ErrnoToStatus(errno, absl::StrCat("cannot listen on ", address));
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) return last;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  *bound = SockaddrText(reinterpret_cast<sockaddr*>(&ss));
  *port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                   : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return fd;
}

}  // namespace

uint64_t RaiseOpenFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  return rl.rlim_cur;
}

absl::Status CheckTcpAddressFree(const std::string& address) {
  std::string bound;
  int port = 0;
  auto fd = BindTcpSocket(address, &bound, &port);
  if (!fd.ok()) return fd.status();
  close(*fd);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Listener>> Listener::BindUnix(const std::string& path) {
  if (absl::Status s = PrepareUnixSocket(path); !s.ok()) return s;
  std::unique_ptr<Listener> l(new Listener());
  l->fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (l->fd_ < 0) return absl::ErrnoToStatus(errno, "socket");
  // The file gets the socket's mode less the umask: set it before bind, so the socket is never
  // wider than 0660 (even under umask 000), then exactly 0660 (under a stricter umask).
  fchmod(l->fd_, 0660);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (bind(l->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(l->fd_, SOMAXCONN) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot listen on ", path));
  }
  l->unix_path_ = path;
  if (chmod(path.c_str(), 0660) != 0) return absl::ErrnoToStatus(errno, "chmod " + path);
  l->bound_ = path;
  return l;
}

absl::StatusOr<std::unique_ptr<Listener>> Listener::BindTcp(const std::string& address) {
  std::unique_ptr<Listener> l(new Listener());
  auto fd = BindTcpSocket(address, &l->bound_, &l->port_);
  if (!fd.ok()) return fd.status();
  l->fd_ = *fd;
  return l;
}

Listener::~Listener() { Stop(); }

void Listener::Start(grpc::Server* server) {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  const uint64_t limit = std::min<uint64_t>(rl.rlim_cur, 1 << 30);
  // Room for what the daemon opens besides connections (files, BPF maps, gRPC's own).
  const uint64_t reserve = std::max<uint64_t>(32, limit / 16);
  max_fd_ = static_cast<int>(limit > reserve ? limit - reserve : limit / 2);
  thread_ = std::thread([this, server] { Run(server); });
}

void Listener::Stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof one) < 0) {
      // An eventfd write fails only when its counter would overflow: it is already woken.
    }
    thread_.join();
  }
  for (int* fd : {&fd_, &wake_fd_, &spare_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  if (!unix_path_.empty()) {
    unlink(unix_path_.c_str());
    unix_path_.clear();
  }
}

ListenerStats Listener::stats() const { return {accepted_.load(), refused_.load()}; }

void Listener::Refuse(int fd, const char* why) {
  if (fd >= 0) close(fd);
  refused_.fetch_add(1, std::memory_order_relaxed);
  if (!refusing_) {
    FLOWSCOPE_LOG_ERROR("{}: {}; refusing new connections until some close", bound_, why);
    refusing_ = true;
  }
}

void Listener::Run(grpc::Server* server) {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (true) {
    fds[0].revents = fds[1].revents = 0;
    if (poll(fds, 2, -1) < 0 && errno != EINTR) {
      FLOWSCOPE_LOG_ERROR("{}: poll: {}", bound_, std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    while (true) {
      const int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (conn >= 0) {
        if (conn >= max_fd_) {
          Refuse(conn, "near the open-file limit");
          continue;
        }
        if (refusing_) {
          FLOWSCOPE_LOG_INFO("{}: accepting connections again", bound_);
          refusing_ = false;
        }
        accepted_.fetch_add(1, std::memory_order_relaxed);
        // gRPC owns the descriptor from here (non-blocking, as its endpoints expect).
        grpc::AddInsecureChannelFromFd(server, conn);
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EMFILE || errno == ENFILE) {
        // The connection waits in the backlog: take it with the spare descriptor and close it,
        // or poll() would report it again at once.
        if (spare_fd_ >= 0) close(spare_fd_);
        const int taken = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        Refuse(taken, "at the open-file limit");
        spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (taken < 0 && spare_fd_ < 0) {
          // Nothing to give up: the connection stays queued. Wait a little (or for Stop()).
          poll(&fds[1], 1, 100);
          if (fds[1].revents != 0) return;
          break;
        }
        continue;
      }
      FLOWSCOPE_LOG_ERROR("{}: accept: {}", bound_, std::strerror(errno));
      break;
    }
  }
}

}  // namespace flowscope
