// Real traffic between the two pods of a TestNetwork: a TCP request/response, a UDP
// request/response, and a connection attempt that may be blocked. Each blocks until done.
#ifndef FLOWSCOPE_TESTS_TESTING_TRAFFIC_H_
#define FLOWSCOPE_TESTS_TESTING_TRAFFIC_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "tests/testing/netns.h"

namespace flowscope::testing {

// Network-order IPv4 address of a literal.
uint32_t Ipv4(const char* text);

// A TCP server in pod b answers one "ping" with "pong" and closes; the client in pod a reads
// to the end and closes. Returns the client's port. The client connects to pod b:port, or to
// `frontend_ip`:`frontend_port` when given (a service address the node translates to pod b).
uint16_t TcpExchange(const TestNetwork& net, uint16_t port, const char* frontend_ip = nullptr,
                     uint16_t frontend_port = 0);

// One UDP datagram from pod a to pod b and its echo (or `reply`, when given). Returns the
// client's port.
uint16_t UdpExchange(const TestNetwork& net, uint16_t port, const std::string& payload = "query",
                     const std::string& reply = "");

// Whether a TCP connection from pod a to pod b:port completes within `timeout` (a listener is
// opened in pod b for it).
bool TryConnect(const TestNetwork& net, uint16_t port, absl::Duration timeout);

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_TRAFFIC_H_
