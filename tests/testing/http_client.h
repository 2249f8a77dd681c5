// A raw HTTP/1.1 client for tests: sends bytes as given (well-formed or not) to a loopback
// port and reads answers, so servers can be probed with exactly the input a test needs.
//
//   testing::HttpClient c(port);
//   c.Send("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
//   std::string response = c.ReadResponse();  // header and body
//   std::string body = testing::HttpGet(port, "/metrics").body;
#ifndef FLOWSCOPE_TESTS_TESTING_HTTP_CLIENT_H_
#define FLOWSCOPE_TESTS_TESTING_HTTP_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace flowscope::testing {

// A plain TCP client on 127.0.0.1 that sends raw bytes and reads raw answers.
class HttpClient {
 public:
  // Connects to 127.0.0.1:`port`, from `source` (host order; any address in 127.0.0.0/8) when
  // given: a client that opens connections by the thousand spreads them over source addresses
  // so that closed ones waiting in TIME_WAIT never use up the ephemeral ports.
  explicit HttpClient(uint16_t port, uint32_t source = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{.tv_sec = 10, .tv_usec = 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (source != 0) {
      sockaddr_in from{};
      from.sin_family = AF_INET;
      from.sin_addr.s_addr = htonl(source);
      if (bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
        connect_errno_ = errno;
        return;
      }
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (!connected_ && errno == EINTR) {
      // A signal (libFuzzer's, a profiler's) interrupted the wait; the connection goes on.
      pollfd p{.fd = fd_, .events = POLLOUT, .revents = 0};
      int err = 0;
      socklen_t len = sizeof err;
      while (poll(&p, 1, 10'000) < 0 && errno == EINTR) {
      }
      connected_ = getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0 &&
                   (p.revents & POLLOUT) != 0;
      errno = err != 0 ? err : EINTR;
    }
    if (!connected_) connect_errno_ = errno;
  }
  ~HttpClient() {
    if (fd_ >= 0) close(fd_);
  }
  bool connected() const { return connected_; }
  // errno of the failed bind or connect (0 when connected).
  int connect_errno() const { return connect_errno_; }
  bool Send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // One response: the header, and a body of its Content-Length (none for HEAD). "" if the
  // connection closed (or timed out) first.
  std::string ReadResponse(bool head = false) {
    while (buffer_.find("\r\n\r\n") == std::string::npos) {
      if (!Fill()) return "";
    }
    const size_t header_end = buffer_.find("\r\n\r\n") + 4;
    size_t length = 0;
    const std::string header = buffer_.substr(0, header_end);
    const size_t cl = header.find("Content-Length: ");
    if (cl != std::string::npos && !head) {
      const size_t eol = header.find("\r\n", cl);
      if (!absl::SimpleAtoi(header.substr(cl + 16, eol - cl - 16), &length)) return "";
    }
    while (buffer_.size() < header_end + length) {
      if (!Fill()) return "";
    }
    std::string out = buffer_.substr(0, header_end + length);
    buffer_.erase(0, header_end + length);
    return out;
  }
  // Tells the server nothing more will come (half-close).
  void CloseSending() { shutdown(fd_, SHUT_WR); }
  // Everything until the server closes the connection (or a read times out).
  std::string ReadAll() {
    while (Fill()) {
    }
    return std::move(buffer_);
  }
  // True once the server has closed the connection (reads end), false on a timeout.
  bool Closed() {
    while (Fill()) {
    }
    return eof_;
  }

 private:
  bool Fill() {
    char buf[4096];
    const ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n == 0) eof_ = true;
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  bool connected_ = false;
  int connect_errno_ = 0;
  bool eof_ = false;
  std::string buffer_;
};

struct HttpAnswer {
  int status = 0;  // 0: no answer
  std::string header;
  std::string body;
};

// GET `path` from 127.0.0.1:`port` (with an Accept header if given), on a connection of its own
// read to its end; a chunked body is put back together.
inline HttpAnswer HttpGet(uint16_t port, const std::string& path, const std::string& accept = "") {
  HttpClient c(port);
  HttpAnswer out;
  if (!c.connected()) return out;
  c.Send(absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n",
                      accept.empty() ? "" : absl::StrCat("Accept: ", accept, "\r\n"), "\r\n"));
  const std::string r = c.ReadAll();
  const size_t end = r.find("\r\n\r\n");
  if (r.size() < 12 || end == std::string::npos || !absl::SimpleAtoi(r.substr(9, 3), &out.status)) {
    return out;
  }
  out.header = r.substr(0, end + 4);
  out.body = r.substr(end + 4);
  if (absl::StrContains(absl::AsciiStrToLower(out.header), "transfer-encoding: chunked")) {
    std::string body;
    size_t pos = 0;
    while (pos < out.body.size()) {
      const size_t eol = out.body.find("\r\n", pos);
      if (eol == std::string::npos) break;
      size_t n = 0;
      if (!absl::SimpleHexAtoi(out.body.substr(pos, eol - pos), &n) || n == 0) break;
      body.append(out.body, eol + 2, n);
      pos = eol + 2 + n + 2;
    }
    out.body = std::move(body);
  }
  return out;
}

// The port of "host:port".
inline uint16_t PortOf(const std::string& address) {
  uint32_t port = 0;
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) return 0;
  return static_cast<uint16_t>(port);
}

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_HTTP_CLIENT_H_
