// flowscope-demo-traffic: the Star Wars demo's workloads, run inside the demo's pod namespaces.
// Real sockets, real packets — the observers see ordinary TCP and UDP flows.
//
//   flowscope-demo-traffic http-server --port 80                     # deathstar
//   flowscope-demo-traffic dns-server --port 53 --record NAME=10.244.1.20,10.244.2.20  # coredns
//   flowscope-demo-traffic client --dns 10.244.1.53 --name NAME --port 80 --every 1s  # tiefighter
//
// The client asks the DNS server for the name, then POSTs /v1/request-landing to one of the
// addresses (in turn), and logs one line per attempt: "landed at …" or why it failed (a policy
// drop shows as a connect timeout).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/time_parse.h"

namespace {

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string Errno(const std::string& what) { return absl::StrCat(what, ": ", strerror(errno)); }

void Log(const std::string& line) {
  std::cout << absl::FormatTime("%H:%M:%E3S ", absl::Now(), absl::UTCTimeZone()) << line
            << std::endl;
}

bool WaitFor(int fd, int16_t events, absl::Duration timeout) {
  pollfd p{fd, events, 0};
  return poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) == 1;
}

int Listen(int type, uint16_t port) {
  const int fd = socket(AF_INET, type, 0);
  if (fd < 0) return -1;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      (type == SOCK_STREAM && listen(fd, 64) != 0)) {
    close(fd);
    return -1;
  }
  return fd;
}

// --- HTTP ----------------------------------------------------------------------------------------

int HttpServer(uint16_t port) {
  Fd server(Listen(SOCK_STREAM, port));
  if (server.get() < 0) {
    std::cerr << Errno(absl::StrCat("flowscope-demo-traffic: listening on TCP port ", port))
              << "\n";
    return 1;
  }
  Log(absl::StrCat("deathstar: serving HTTP on port ", port));
  while (true) {
    Fd conn(accept(server.get(), nullptr, nullptr));
    if (conn.get() < 0) continue;
    std::string request;
    char buf[1024];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192 &&
           WaitFor(conn.get(), POLLIN, absl::Seconds(2))) {
      const ssize_t n = read(conn.get(), buf, sizeof buf);
      if (n <= 0) break;
      request.append(buf, static_cast<size_t>(n));
    }
    const std::string body = "Ship landed\n";
    const std::string reply =
        absl::StrCat("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ", body.size(),
                     "\r\nConnection: close\r\n\r\n", body);
    if (write(conn.get(), reply.data(), reply.size()) < 0) continue;
  }
}

// --- DNS -----------------------------------------------------------------------------------------

void Put16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v & 0xff));
}

uint16_t Get16(const std::string& s, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(s[at]) << 8) |
                               static_cast<uint8_t>(s[at + 1]));
}

// Reads a (possibly compressed) name at `*at`, advancing past it; nullopt if malformed.
std::optional<std::string> ReadName(const std::string& msg, size_t* at) {
  std::string name;
  size_t pos = *at;
  bool jumped = false;
  for (int hops = 0; hops < 32; ++hops) {
    if (pos >= msg.size()) return std::nullopt;
    const auto len = static_cast<uint8_t>(msg[pos]);
    if (len == 0) {
      if (!jumped) *at = pos + 1;
      return name;
    }
    if ((len & 0xc0) == 0xc0) {
      if (pos + 1 >= msg.size()) return std::nullopt;
      if (!jumped) *at = pos + 2;
      jumped = true;
      pos = Get16(msg, pos) & 0x3fff;
      continue;
    }
    if (pos + 1 + len > msg.size()) return std::nullopt;
    if (!name.empty()) name.push_back('.');
    name.append(msg, pos + 1, len);
    pos += 1 + len;
  }
  return std::nullopt;
}

void PutName(std::string* out, const std::string& name) {
  for (absl::string_view label : absl::StrSplit(name, '.', absl::SkipEmpty())) {
    out->push_back(static_cast<char>(label.size()));
    out->append(label.data(), label.size());
  }
  out->push_back('\0');
}

int DnsServer(uint16_t port, const std::map<std::string, std::vector<in_addr>>& records) {
  Fd sock(Listen(SOCK_DGRAM, port));
  if (sock.get() < 0) {
    std::cerr << Errno(absl::StrCat("flowscope-demo-traffic: listening on UDP port ", port))
              << "\n";
    return 1;
  }
  Log(absl::StrCat("coredns: answering on UDP port ", port));
  char buf[512];
  while (true) {
    sockaddr_in from{};
    socklen_t from_len = sizeof from;
    const ssize_t n =
        recvfrom(sock.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 12) continue;  // not even a header: ignore
    const std::string query(buf, static_cast<size_t>(n));
    size_t at = 12;
    const auto name = ReadName(query, &at);
    if (!name || at + 4 > query.size() || Get16(query, 4) != 1) continue;
    const uint16_t qtype = Get16(query, at);
    auto it = records.find(absl::AsciiStrToLower(*name));
    const bool known = it != records.end();
    const std::vector<in_addr> none;
    const std::vector<in_addr>& answers = known && qtype == 1 ? it->second : none;
    std::string reply;
    Put16(&reply, Get16(query, 0));          // id
    Put16(&reply, known ? 0x8180 : 0x8183);  // response, recursion desired+available; NXDOMAIN
    Put16(&reply, 1);
    Put16(&reply, static_cast<uint16_t>(answers.size()));
    Put16(&reply, 0);
    Put16(&reply, 0);
    reply.append(query, 12, at + 4 - 12);  // the question
    for (const in_addr& a : answers) {
      Put16(&reply, 0xc00c);  // the name in the question
      Put16(&reply, 1);       // A
      Put16(&reply, 1);       // IN
      Put16(&reply, 0);
      Put16(&reply, 30);  // TTL
      Put16(&reply, 4);
      reply.append(reinterpret_cast<const char*>(&a), 4);
    }
    sendto(sock.get(), reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
  }
}

// Asks `server` for the A records of `name`.
std::vector<in_addr> Resolve(const in_addr& server, const std::string& name, std::string* error) {
  Fd sock(socket(AF_INET, SOCK_DGRAM, 0));
  static std::mt19937 rng{std::random_device{}()};
  const auto id = static_cast<uint16_t>(rng());
  std::string query;
  Put16(&query, id);
  Put16(&query, 0x0100);  // recursion desired
  Put16(&query, 1);
  Put16(&query, 0);
  Put16(&query, 0);
  Put16(&query, 0);
  PutName(&query, name);
  Put16(&query, 1);  // A
  Put16(&query, 1);  // IN
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(53);
  to.sin_addr = server;
  if (sendto(sock.get(), query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&to),
             sizeof to) < 0) {
    *error = Errno("dns query");
    return {};
  }
  if (!WaitFor(sock.get(), POLLIN, absl::Seconds(1))) {
    *error = "dns: no answer within 1s";
    return {};
  }
  char buf[512];
  const ssize_t n = recv(sock.get(), buf, sizeof buf, 0);
  const std::string reply(buf, n > 0 ? static_cast<size_t>(n) : 0);
  if (reply.size() < 12 || Get16(reply, 0) != id) {
    *error = "dns: malformed answer";
    return {};
  }
  if ((Get16(reply, 2) & 0xf) != 0) {
    *error = absl::StrCat("dns: ", name, " not found");
    return {};
  }
  size_t at = 12;
  for (uint16_t q = 0; q < Get16(reply, 4); ++q) {
    if (!ReadName(reply, &at)) break;
    at += 4;
  }
  std::vector<in_addr> out;
  for (uint16_t a = 0; a < Get16(reply, 6) && at < reply.size(); ++a) {
    if (!ReadName(reply, &at) || at + 10 > reply.size()) break;
    const uint16_t type = Get16(reply, at);
    const uint16_t len = Get16(reply, at + 8);
    at += 10;
    if (at + len > reply.size()) break;
    if (type == 1 && len == 4) {
      in_addr addr{};
      std::memcpy(&addr, reply.data() + at, 4);
      out.push_back(addr);
    }
    at += len;
  }
  if (out.empty()) *error = "dns: no address in the answer";
  return out;
}

// One POST /v1/request-landing; the status line, or why there is none.
std::string Land(const in_addr& addr, uint16_t port, const std::string& host) {
  Fd sock(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr = addr;
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr, ip, sizeof ip);
  const std::string where = absl::StrCat(ip, ":", port);
  if (connect(sock.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0 &&
      errno != EINPROGRESS) {
    return Errno("connect to " + where);
  }
  if (!WaitFor(sock.get(), POLLOUT, absl::Seconds(1))) {
    return absl::StrCat("connect to ", where, ": timed out (dropped?)");
  }
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return absl::StrCat("connect to ", where, ": ", strerror(err));
  const std::string request = absl::StrCat("POST /v1/request-landing HTTP/1.1\r\nHost: ", host,
                                           "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  if (write(sock.get(), request.data(), request.size()) < 0) return Errno("send to " + where);
  std::string response;
  char buf[1024];
  while (WaitFor(sock.get(), POLLIN, absl::Seconds(2))) {
    const ssize_t n = read(sock.get(), buf, sizeof buf);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  const std::string status = response.substr(0, response.find("\r\n"));
  if (status.empty()) return absl::StrCat(where, ": no response");
  return absl::StrCat("landed at ", where, ": ", status);
}

int Client(const std::string& dns, const std::string& name, uint16_t port, absl::Duration every) {
  in_addr server{};
  if (inet_pton(AF_INET, dns.c_str(), &server) != 1) {
    std::cerr << "flowscope-demo-traffic: --dns wants an IPv4 address, not \"" << dns << "\"\n";
    return 2;
  }
  for (uint64_t round = 0;; ++round) {
    const absl::Time next = absl::Now() + every;
    std::string error;
    const std::vector<in_addr> addrs = Resolve(server, name, &error);
    Log(addrs.empty() ? error : Land(addrs[round % addrs.size()], port, name));
    absl::SleepFor(next - absl::Now());
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flowscope-demo-traffic: the demo's servers and clients"};
  app.require_subcommand(1);
  uint16_t port = 0;
  std::vector<std::string> records;
  std::string dns, name, every = "1s";
  CLI::App* http = app.add_subcommand("http-server", "answer HTTP requests (deathstar)");
  http->add_option("--port", port, "TCP port")->required();
  CLI::App* dns_server = app.add_subcommand("dns-server", "answer DNS A queries (coredns)");
  dns_server->add_option("--port", port, "UDP port")->required();
  dns_server->add_option("--record", records, "name=ip[,ip...] (repeatable)");
  CLI::App* client = app.add_subcommand("client", "resolve, then request a landing, forever");
  client->add_option("--dns", dns, "DNS server address")->required();
  client->add_option("--name", name, "name to resolve")->required();
  client->add_option("--port", port, "TCP port to connect to")->required();
  client->add_option("--every", every, "time between attempts")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (http->parsed()) return HttpServer(port);
  if (dns_server->parsed()) {
    std::map<std::string, std::vector<in_addr>> table;
    for (const std::string& r : records) {
      const std::vector<std::string> kv = absl::StrSplit(r, absl::MaxSplits('=', 1));
      if (kv.size() != 2 || kv[0].empty()) {
        std::cerr << "flowscope-demo-traffic: --record \"" << r << "\" is not name=ip[,ip...]\n";
        return 2;
      }
      for (absl::string_view ip : absl::StrSplit(kv[1], ',', absl::SkipEmpty())) {
        in_addr a{};
        if (inet_pton(AF_INET, std::string(ip).c_str(), &a) != 1) {
          std::cerr << "flowscope-demo-traffic: --record \"" << r << "\": \"" << ip
                    << "\" is not an IPv4 address\n";
          return 2;
        }
        table[absl::AsciiStrToLower(kv[0])].push_back(a);
      }
    }
    return DnsServer(port, table);
  }
  auto interval = flowscope::ParseGoDuration(every);
  if (!interval.ok() || *interval <= absl::ZeroDuration()) {
    std::cerr << "flowscope-demo-traffic: invalid --every " << every << "\n";
    return 2;
  }
  return Client(dns, name, port, *interval);
}
