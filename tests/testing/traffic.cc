#include "tests/testing/traffic.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace flowscope::testing {

uint32_t Ipv4(const char* text) {
  in_addr a{};
  inet_pton(AF_INET, text, &a);
  return a.s_addr;
}

namespace {

// A TCP listener on pod b's address.
int ListenInPodB(const TestNetwork& net, uint16_t port) {
  int listen_fd = -1;
  InNetns(net.pod_b(), [&] {
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = Ipv4(TestNetwork::kIpB);
    EXPECT_EQ(bind(listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
    EXPECT_EQ(listen(listen_fd, 4), 0);
  });
  return listen_fd;
}

}  // namespace

// A TCP server in pod b that answers one request; a client in pod a. Returns the client port.
uint16_t TcpExchange(const TestNetwork& net, uint16_t port, const char* frontend_ip,
                     uint16_t frontend_port) {
  const int listen_fd = ListenInPodB(net, port);
  NetnsThread server(net.pod_b(), [&] {
    const int c = accept(listen_fd, nullptr, nullptr);
    char buf[16];
    EXPECT_EQ(read(c, buf, 4), 4);
    EXPECT_EQ(write(c, "pong", 4), 4);
    close(c);
  });
  uint16_t client_port = 0;
  InNetns(net.pod_a(), [&] {
    const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(frontend_ip != nullptr ? frontend_port : port);
    a.sin_addr.s_addr = Ipv4(frontend_ip != nullptr ? frontend_ip : TestNetwork::kIpB);
    ASSERT_EQ(connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
    sockaddr_in local{};
    socklen_t len = sizeof local;
    getsockname(s, reinterpret_cast<sockaddr*>(&local), &len);
    client_port = ntohs(local.sin_port);
    EXPECT_EQ(write(s, "ping", 4), 4);
    char buf[16];
    EXPECT_EQ(read(s, buf, sizeof buf), 4);
    EXPECT_EQ(read(s, buf, sizeof buf), 0) << "server closed";
    close(s);
  });
  server.Join();
  close(listen_fd);
  return client_port;
}

uint16_t UdpExchange(const TestNetwork& net, uint16_t port, const std::string& payload,
                     const std::string& reply) {
  int server_fd = -1;
  InNetns(net.pod_b(), [&] {
    server_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = Ipv4(TestNetwork::kIpB);
    EXPECT_EQ(bind(server_fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  });
  NetnsThread server(net.pod_b(), [&] {
    char buf[2048];
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t n =
        recvfrom(server_fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
    EXPECT_GT(n, 0);
    const std::string out =
        reply.empty() ? std::string(buf, n > 0 ? static_cast<size_t>(n) : 0) : reply;
    sendto(server_fd, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
  });
  uint16_t client_port = 0;
  InNetns(net.pod_a(), [&] {
    const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = Ipv4(TestNetwork::kIpB);
    EXPECT_EQ(
        sendto(s, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a),
        static_cast<ssize_t>(payload.size()));
    char buf[2048];
    EXPECT_EQ(recv(s, buf, sizeof buf, 0),
              static_cast<ssize_t>(reply.empty() ? payload.size() : reply.size()));
    sockaddr_in local{};
    socklen_t len = sizeof local;
    getsockname(s, reinterpret_cast<sockaddr*>(&local), &len);
    client_port = ntohs(local.sin_port);
    close(s);
  });
  server.Join();
  close(server_fd);
  return client_port;
}

bool TryConnect(const TestNetwork& net, uint16_t port, absl::Duration timeout) {
  const int listen_fd = ListenInPodB(net, port);
  bool connected = false;
  InNetns(net.pod_a(), [&] {
    const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = Ipv4(TestNetwork::kIpB);
    connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    pollfd p{s, POLLOUT, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) == 1) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
      connected = err == 0;
    }
    close(s);
  });
  close(listen_fd);
  return connected;
}

}  // namespace flowscope::testing
