#include "cmd/cli/connection.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "api/file_util.h"
#include "api/text.h"
#include "api/time_parse.h"
#include "api/version.h"

namespace flowscope::cli {
namespace {

// The target without a tls:// prefix, and whether the connection uses TLS.
std::pair<std::string, bool> Target(const ServerOptions& server) {
  absl::string_view target = server.server;
  const bool prefixed = absl::ConsumePrefix(&target, "tls://");
  return {std::string(target), server.tls || prefixed};
}

// strerror in Go's words: "connection refused", "no such file or directory".
std::string ErrnoText(int err) {
  std::string text = std::strerror(err);
  if (!text.empty()) text[0] = absl::ascii_tolower(static_cast<unsigned char>(text[0]));
  return text;
}

// connect(2) to one address, waiting at most `timeout`; 0 or the errno.
int TryConnect(const sockaddr* addr, socklen_t len, absl::Duration timeout) {
  const int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int err = 0;
  if (connect(fd, addr, len) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      const int n = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
      socklen_t sl = sizeof err;
      if (n == 0) {
        err = ETIMEDOUT;
      } else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0) {
        err = errno;
      }
    }
  }
  close(fd);
  return err;
}

}  // namespace

std::string ConnectProblem(const std::string& target, absl::Duration timeout) {
  absl::string_view t = target;
  if (absl::ConsumePrefix(&t, "unix:")) {
    absl::ConsumePrefix(&t, "//");
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    if (t.size() >= sizeof sun.sun_path) return absl::StrCat("socket path too long: ", t);
    std::memcpy(sun.sun_path, t.data(), t.size());
    const int err = TryConnect(reinterpret_cast<const sockaddr*>(&sun), sizeof sun, timeout);
    return err == 0 ? "" : absl::StrCat("dial unix ", t, ": connect: ", ErrnoText(err));
  }
  for (absl::string_view scheme : {"dns:///", "ipv4:", "ipv6:"}) absl::ConsumePrefix(&t, scheme);
  std::string host;
  std::string port;
  if (absl::ConsumePrefix(&t, "[")) {
    const size_t close_bracket = t.find(']');
    if (close_bracket == absl::string_view::npos) return "";
    host = std::string(t.substr(0, close_bracket));
    t.remove_prefix(close_bracket + 1);
    if (!absl::ConsumePrefix(&t, ":")) return "";
    port = std::string(t);
  } else {
    const size_t colon = t.rfind(':');
    if (colon == absl::string_view::npos) return "";  // gRPC's own default port: not ours to guess
    host = std::string(t.substr(0, colon));
    port = std::string(t.substr(colon + 1));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc =
          getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return absl::StrCat("dial tcp: lookup ", host, ": ", gai_strerror(rc));
  }
  std::string problem;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int err = TryConnect(a->ai_addr, a->ai_addrlen, timeout);
    if (err == 0) {
      problem.clear();
      break;
    }
    if (problem.empty()) {
      char h[NI_MAXHOST] = {};
      getnameinfo(a->ai_addr, a->ai_addrlen, h, sizeof h, nullptr, 0, NI_NUMERICHOST);
      const bool v6 = a->ai_family == AF_INET6;
      problem = absl::StrCat("dial tcp ", v6 ? "[" : "", h, v6 ? "]" : "", ":", port,
                             ": connect: ", ErrnoText(err));
    }
  }
  freeaddrinfo(found);
  return problem;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> Dial(const ServerOptions& server) {
  const auto [target, tls] = Target(server);
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  grpc::ChannelArguments args;
  if (tls) {
    auto c = ClientTlsCredentials(server.tls_options);
    if (!c.ok()) return c.status();
    creds = c->credentials;
    args = c->args;
  }
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  auto channel = grpc::CreateCustomChannel(target, creds, args);
  const absl::Time deadline = absl::Now() + server.dial_timeout;
  for (grpc_connectivity_state state = channel->GetState(true); state != GRPC_CHANNEL_READY;
       state = channel->GetState(true)) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      // The attempt failed: say why now (as Hubble does), not after the timeout.
      const std::string problem =
          ConnectProblem(target, std::max(deadline - absl::Now(), absl::Milliseconds(200)));
      if (!problem.empty()) {
        return absl::UnavailableError(
            absl::StrCat("failed to connect to '", target, "': connection error: ", problem));
      }
      if (tls) {
        return absl::UnavailableError(absl::StrCat(
            "failed to connect to '", target,
            "' over TLS: the connection was made but the handshake failed (is it serving TLS, "
            "and is its certificate trusted for that name? see --tls-ca-cert-files, "
            "--tls-server-name, --tls-client-cert-file)"));
      }
      return absl::UnavailableError(absl::StrCat(
          "failed to connect to '", target,
          "': the connection was made but gRPC could not speak over it (is it a gRPC server? "
          "does it need --tls?)"));
    }
    if (!channel->WaitForStateChange(state, absl::ToChronoTime(deadline))) {
      return absl::UnavailableError(absl::StrCat("failed to connect to '", target,
                                                 "': no answer within ",
                                                 FormatGoDuration(server.dial_timeout)));
    }
  }
  return channel;
}

void Authorize(grpc::ClientContext* ctx, const ServerOptions& server) {
  if (server.basic_auth_username.empty()) return;
  ctx->AddMetadata("authorization",
                   "Basic " + absl::Base64Escape(absl::StrCat(server.basic_auth_username, ":",
                                                              server.basic_auth_password)));
}

void SetDeadline(grpc::ClientContext* ctx, absl::Duration d) {
  ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d));
}

absl::Status CheckConnectionSettings(const ServerOptions& server) {
  const auto [target, tls] = Target(server);
  const TlsClientOptions& t = server.tls_options;
  if (!tls) {
    if (!t.ca_files.empty() || !t.cert_file.empty() || !t.key_file.empty() ||
        !t.server_name.empty() || t.allow_insecure) {
      return absl::InvalidArgumentError(
          "TLS settings (--tls-*) given without TLS: add --tls or use a tls:// server");
    }
    if (!server.basic_auth_username.empty() || !server.basic_auth_password.empty()) {
      return absl::InvalidArgumentError(
          "basic auth needs TLS (--tls or a tls:// server): credentials are never sent in the "
          "clear");
    }
    return absl::OkStatus();
  }
  if (absl::StartsWith(target, "unix:")) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS is for TCP servers, not the unix socket ", target));
  }
  if (server.basic_auth_username.empty() != server.basic_auth_password.empty()) {
    return absl::InvalidArgumentError(
        "basic auth needs both --basic-auth-username and --basic-auth-password");
  }
  return ClientTlsCredentials(t).status();
}

absl::StatusOr<ServerOptions> ResolveServer(const std::string& server, const std::string& timeout,
                                            const std::string& request_timeout) {
  ServerOptions o;
  if (!server.empty()) o.server = server;
  for (auto [text, out, name] :
       {std::tuple{&timeout, &o.dial_timeout, "--timeout"},
        std::tuple{&request_timeout, &o.request_timeout, "--request-timeout"}}) {
    if (text->empty()) continue;
    auto d = ParseGoDuration(*text);
    if (!d.ok() || *d <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid ", name, " \"", *text, "\": expected a duration like 5s"));
    }
    *out = *d;
  }
  return o;
}

void WarnIfServerIsNewer(const grpc::ClientContext& ctx, std::ostream& err) {
  const auto& md = ctx.GetServerInitialMetadata();
  for (const auto& [key, what] :
       {std::pair{kRelayVersionHeader, "relay"}, std::pair{kServerVersionHeader, "server"}}) {
    auto it = md.find(key);
    if (it == md.end()) continue;
    const std::string version(it->second.data(), it->second.size());
    if (VersionIsLower(kVersionNumber, version)) {
      err << "flowscope: warning: this CLI (v" << kVersionNumber << ") is older than the " << what
          << " (" << Quote(version)
          << "): API compatibility is not guaranteed; update the CLI to a matching or newer "
             "version\n";
    }
  }
}

}  // namespace flowscope::cli
