#include "observer/kube_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace flowscope::observer {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

absl::StatusOr<std::string> ReadWholeFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
  }
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool IsIpLiteral(const std::string& host) {
  boost::system::error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

void SetSocketTimeout(int fd, absl::Duration timeout) {
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::string Describe(const boost::system::error_code& ec) {
  if (ec == net::error::would_block || ec == net::error::try_again || ec == net::error::timed_out) {
    return "timed out";
  }
  return ec.message();
}

}  // namespace

// --- configuration ------------------------------------------------------------------------------

absl::StatusOr<KubeConfig> InClusterConfig(const std::string& sa_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0' || port == nullptr || *port == '\0') {
    return absl::FailedPreconditionError(
        "not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
        "are not set): give --kubeconfig");
  }
  KubeConfig c;
  const std::string h = host;
  c.server =
      absl::StrCat("https://", h.find(':') != std::string::npos ? "[" + h + "]" : h, ":", port);
  c.token_file = sa_dir + "/token";
  c.ca_file = sa_dir + "/ca.crt";
  c.source = "in-cluster service account";
  if (auto t = ReadWholeFile(c.token_file, "service account token"); !t.ok()) return t.status();
  if (auto t = ReadWholeFile(c.ca_file, "service account CA"); !t.ok()) return t.status();
  return c;
}

absl::StatusOr<KubeConfig> LoadKubeconfig(const std::string& path_in, const std::string& context) {
  std::string path = path_in;
  if (absl::StartsWith(path, "~/")) {
    const char* home = std::getenv("HOME");
    path = std::string(home != nullptr ? home : "") + path.substr(1);
  }
  auto text = ReadWholeFile(path, "kubeconfig");
  if (!text.ok()) return text.status();
  const auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("kubeconfig ", path, ": ", what));
  };
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return bad(e.what());
  }
  if (!root.IsMap()) return bad("not a kubeconfig (no map at the top)");
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  const auto resolve = [&](const std::string& p) {
    return p.empty() || p.front() == '/' ? p : (dir / p).string();
  };
  const auto find = [&](const char* list, const std::string& name,
                        const char* field) -> absl::StatusOr<YAML::Node> {
    const YAML::Node items = root[list];
    if (items && items.IsSequence()) {
      for (const YAML::Node& item : items) {
        if (item.IsMap() && item["name"] && item["name"].as<std::string>("") == name) {
          const YAML::Node n = item[field];
          if (!n || !n.IsMap())
            return bad(absl::StrCat(list, " entry \"", name, "\" has no ", field));
          return n;
        }
      }
    }
    return bad(absl::StrCat("no ", list, " entry named \"", name, "\""));
  };
  try {
    const std::string ctx_name =
        context.empty() ? root["current-context"].as<std::string>("") : context;
    if (ctx_name.empty()) return bad("no current-context (give one)");
    auto ctx = find("contexts", ctx_name, "context");
    if (!ctx.ok()) return ctx.status();
    auto cluster = find("clusters", (*ctx)["cluster"].as<std::string>(""), "cluster");
    if (!cluster.ok()) return cluster.status();
    KubeConfig c;
    c.source = absl::StrCat("kubeconfig ", path, " (context ", ctx_name, ")");
    c.server = (*cluster)["server"].as<std::string>("");
    if (c.server.empty()) return bad("the cluster has no server");
    c.ca_file = resolve((*cluster)["certificate-authority"].as<std::string>(""));
    std::string data = (*cluster)["certificate-authority-data"].as<std::string>("");
    if (!data.empty() && !absl::Base64Unescape(data, &c.ca_pem)) {
      return bad("certificate-authority-data is not base64");
    }
    c.insecure_skip_tls_verify = (*cluster)["insecure-skip-tls-verify"].as<bool>(false);
    c.tls_server_name = (*cluster)["tls-server-name"].as<std::string>("");
    const std::string user_name = (*ctx)["user"].as<std::string>("");
    if (!user_name.empty()) {
      auto user = find("users", user_name, "user");
      if (!user.ok()) return user.status();
      if ((*user)["exec"] || (*user)["auth-provider"]) {
        return bad(absl::StrCat("user \"", user_name,
                                "\" uses an exec or auth-provider plugin, which flowscope does "
                                "not run: use a token, token file or client certificate"));
      }
      c.token = (*user)["token"].as<std::string>("");
      c.token_file = resolve((*user)["tokenFile"].as<std::string>(""));
      c.client_cert_file = resolve((*user)["client-certificate"].as<std::string>(""));
      c.client_key_file = resolve((*user)["client-key"].as<std::string>(""));
      data = (*user)["client-certificate-data"].as<std::string>("");
      if (!data.empty() && !absl::Base64Unescape(data, &c.client_cert_pem)) {
        return bad("client-certificate-data is not base64");
      }
      data = (*user)["client-key-data"].as<std::string>("");
      if (!data.empty() && !absl::Base64Unescape(data, &c.client_key_pem)) {
        return bad("client-key-data is not base64");
      }
    }
    return c;
  } catch (const YAML::Exception& e) {
    return bad(e.what());
  }
}

// --- the client ---------------------------------------------------------------------------------

struct KubeClient::TlsContext {
  ssl::context ctx{ssl::context::tls_client};
};

class KubeClient::Connection {
 public:
  net::io_context ioc;
  tcp::socket socket{ioc};
  std::optional<ssl::stream<tcp::socket&>> tls;
  int fd = -1;
};

KubeClient::KubeClient(KubeConfig config) : config_(std::move(config)) {}

KubeClient::~KubeClient() { Shutdown(); }

absl::StatusOr<std::unique_ptr<KubeClient>> KubeClient::Create(const KubeConfig& config) {
  std::unique_ptr<KubeClient> c(new KubeClient(config));
  absl::string_view rest = config.server;
  if (absl::ConsumePrefix(&rest, "https://")) {
    c->tls_ = true;
  } else if (absl::ConsumePrefix(&rest, "http://")) {
    c->tls_ = false;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("Kubernetes API server \"", config.server, "\": not an https:// URL"));
  }
  rest = rest.substr(0, rest.find('/'));
  std::string host(rest), port = c->tls_ ? "443" : "80";
  if (absl::StartsWith(host, "[")) {
    const size_t end = host.find(']');
    if (end == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("Kubernetes API server \"", config.server, "\": unclosed [ in the address"));
    }
    if (end + 1 < host.size() && host[end + 1] == ':') port = host.substr(end + 2);
    host = host.substr(1, end - 1);
  } else if (const size_t colon = host.rfind(':'); colon != std::string::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  int port_number = 0;
  if (host.empty() || !absl::SimpleAtoi(port, &port_number) || port_number <= 0 ||
      port_number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("Kubernetes API server \"", config.server, "\": bad host or port"));
  }
  c->host_ = host;
  c->port_ = port;
  if (!c->tls_) return c;

  c->ssl_ = std::make_unique<TlsContext>();
  ssl::context& ctx = c->ssl_->ctx;
  boost::system::error_code ec;
  const auto fail = [&](const std::string& what) {
    return absl::InvalidArgumentError(
        absl::StrCat(config.source.empty() ? "Kubernetes client" : config.source, ": ", what, ": ",
                     ec.message()));
  };
  if (config.insecure_skip_tls_verify) {
    ctx.set_verify_mode(ssl::verify_none);
  } else {
    ctx.set_verify_mode(ssl::verify_peer);
    if (!config.ca_pem.empty()) {
      ctx.add_certificate_authority(net::buffer(config.ca_pem), ec);
      if (ec) return fail("certificate-authority-data");
    } else if (!config.ca_file.empty()) {
      ctx.load_verify_file(config.ca_file, ec);
      if (ec) return fail(absl::StrCat("CA file ", config.ca_file));
    } else {
      ctx.set_default_verify_paths(ec);
      if (ec) return fail("the system's CA certificates");
    }
  }
  if (!config.client_cert_pem.empty()) {
    ctx.use_certificate_chain(net::buffer(config.client_cert_pem), ec);
    if (ec) return fail("client-certificate-data");
  } else if (!config.client_cert_file.empty()) {
    ctx.use_certificate_chain_file(config.client_cert_file, ec);
    if (ec) return fail(absl::StrCat("client certificate ", config.client_cert_file));
  }
  if (!config.client_key_pem.empty()) {
    ctx.use_private_key(net::buffer(config.client_key_pem), ssl::context::pem, ec);
    if (ec) return fail("client-key-data");
  } else if (!config.client_key_file.empty()) {
    ctx.use_private_key_file(config.client_key_file, ssl::context::pem, ec);
    if (ec) return fail(absl::StrCat("client key ", config.client_key_file));
  }
  return c;
}

absl::StatusOr<std::string> KubeClient::Token() const {
  if (!config_.token_file.empty()) {
    auto t = ReadWholeFile(config_.token_file, "token file");
    if (!t.ok()) return t.status();
    return std::string(absl::StripAsciiWhitespace(*t));
  }
  return config_.token;
}

bool KubeClient::Track(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) return false;
  fds_.insert(fd);
  return true;
}

void KubeClient::Untrack(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  fds_.erase(fd);
}

void KubeClient::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  shutdown_ = true;
  for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
}

absl::StatusOr<std::unique_ptr<KubeClient::Connection>> KubeClient::Connect(
    absl::Duration timeout) {
  auto conn = std::make_unique<Connection>();
  boost::system::error_code ec;
  tcp::resolver resolver(conn->ioc);
  const auto endpoints = resolver.resolve(host_, port_, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("Kubernetes API server ", host_, ": ", ec.message()));
  }
  absl::Status last = absl::UnavailableError("no address");
  for (const auto& ep : endpoints) {
    conn->socket.open(ep.endpoint().protocol(), ec);
    if (ec) continue;
    conn->fd = conn->socket.native_handle();
    SetSocketTimeout(conn->fd, timeout);  // bounds connect() too
    if (!Track(conn->fd)) return absl::CancelledError("the Kubernetes client is shut down");
    conn->socket.connect(ep.endpoint(), ec);
    if (!ec) break;
    Untrack(conn->fd);
    last = absl::UnavailableError(absl::StrCat("connecting to the Kubernetes API server ",
                                               config_.server, ": ", Describe(ec)));
    conn->socket.close(ec);
    conn->fd = -1;
  }
  if (conn->fd < 0) return last;
  if (tls_) {
    conn->tls.emplace(conn->socket, ssl_->ctx);
    SSL* ssl = conn->tls->native_handle();
    const std::string& name = config_.tls_server_name.empty() ? host_ : config_.tls_server_name;
    if (!IsIpLiteral(name)) SSL_set_tlsext_host_name(ssl, name.c_str());
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (IsIpLiteral(name)) {
      X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
    }
    conn->tls->handshake(ssl::stream_base::client, ec);
    if (ec) {
      Untrack(conn->fd);
      return absl::UnavailableError(
          absl::StrCat("TLS with the Kubernetes API server ", config_.server, ": ", Describe(ec)));
    }
  }
  return conn;
}

namespace {

http::request<http::empty_body> MakeRequest(const std::string& target, const std::string& host,
                                            const std::string& token) {
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, host);
  req.set(http::field::user_agent, "flowscope-observer");
  req.set(http::field::accept, "application/json");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  req.keep_alive(false);
  return req;
}

template <class Stream>
absl::StatusOr<KubeClient::Response> DoGet(Stream& stream,
                                           const http::request<http::empty_body>& req) {
  boost::system::error_code ec;
  http::write(stream, req, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("sending the request: ", Describe(ec)));
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::uint64_t{1} << 30);
  http::read(stream, buffer, parser, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("reading the answer: ", Describe(ec)));
  return KubeClient::Response{static_cast<int>(parser.get().result_int()),
                              std::move(parser.get().body())};
}

template <class Stream>
absl::StatusOr<KubeClient::Response> DoWatch(
    Stream& stream, const http::request<http::empty_body>& req,
    const std::function<bool(absl::string_view)>& on_line) {
  boost::system::error_code ec;
  http::write(stream, req, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("sending the request: ", Describe(ec)));
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);
  http::read_header(stream, buffer, parser, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("reading the answer: ", Describe(ec)));
  const int status = static_cast<int>(parser.get().result_int());
  if (status != 200 || !parser.chunked()) {
    parser.body_limit(std::uint64_t{64} << 20);
    http::read(stream, buffer, parser, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("reading the answer: ", Describe(ec)));
    KubeClient::Response r{status, std::move(parser.get().body())};
    if (status == 200) {  // not streamed: the lines are all there
      for (absl::string_view rest = r.body; !rest.empty();) {
        const size_t nl = rest.find('\n');
        const absl::string_view line = rest.substr(0, nl);
        if (!line.empty() && !on_line(line)) break;
        rest = nl == absl::string_view::npos ? absl::string_view() : rest.substr(nl + 1);
      }
      r.body.clear();
    }
    return r;
  }
  std::string pending;
  bool stopped = false;
  auto on_chunk = [&](std::uint64_t, absl::string_view body, boost::system::error_code& cec) {
    pending.append(body.data(), body.size());
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      const absl::string_view line(pending.data() + start, nl - start);
      if (!line.empty() && !on_line(line)) {
        stopped = true;
        cec = net::error::operation_aborted;
        return body.size();
      }
    }
    pending.erase(0, start);
    return body.size();
  };
  auto chunk_body = [&](std::uint64_t remain, beast::string_view body,
                        boost::system::error_code& cec) -> std::size_t {
    return on_chunk(remain, absl::string_view(body.data(), body.size()), cec);
  };
  parser.on_chunk_body(chunk_body);  // kept by reference: it outlives the read
  http::read(stream, buffer, parser, ec);
  if (stopped) return KubeClient::Response{200, ""};
  if (ec) return absl::UnavailableError(absl::StrCat("the watch broke off: ", Describe(ec)));
  if (!pending.empty()) on_line(pending);
  return KubeClient::Response{200, ""};
}

}  // namespace

absl::StatusOr<KubeClient::Response> KubeClient::Get(const std::string& target,
                                                     absl::Duration timeout) {
  auto token = Token();
  if (!token.ok()) return token.status();
  auto conn = Connect(timeout);
  if (!conn.ok()) return conn.status();
  const auto req = MakeRequest(target, host_, *token);
  auto r = (*conn)->tls ? DoGet(*(*conn)->tls, req) : DoGet((*conn)->socket, req);
  Untrack((*conn)->fd);
  if (!r.ok()) {
    return absl::Status(r.status().code(),
                        absl::StrCat("GET ", config_.server, target, ": ", r.status().message()));
  }
  return r;
}

absl::StatusOr<KubeClient::Response> KubeClient::Watch(
    const std::string& target, absl::Duration idle_timeout,
    const std::function<bool(absl::string_view line)>& on_line) {
  auto token = Token();
  if (!token.ok()) return token.status();
  auto conn = Connect(idle_timeout);
  if (!conn.ok()) return conn.status();
  const auto req = MakeRequest(target, host_, *token);
  auto r =
      (*conn)->tls ? DoWatch(*(*conn)->tls, req, on_line) : DoWatch((*conn)->socket, req, on_line);
  Untrack((*conn)->fd);
  if (!r.ok()) {
    return absl::Status(r.status().code(),
                        absl::StrCat("watch ", config_.server, target, ": ", r.status().message()));
  }
  return r;
}

}  // namespace flowscope::observer
