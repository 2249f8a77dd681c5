#include "api/http_server.h"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/logging.h"
#include "api/text.h"

namespace flowscope {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

namespace {

std::chrono::steady_clock::duration Chrono(absl::Duration d) {
  return absl::ToChronoNanoseconds(d);
}

// "host:port", "[v6]:port", ":port" → host (empty: every interface) and port.
absl::Status SplitAddress(const std::string& address, std::string* host, uint16_t* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("http address \"", Quote(address), "\": expected host:port or :port"));
  }
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  uint64_t p = 0;
  if (!ParseDecimal(address.substr(colon + 1), 0, 65535, &p)) {
    return absl::InvalidArgumentError(
        absl::StrCat("http address \"", Quote(address), "\": the port must be 0..65535"));
  }
  *port = static_cast<uint16_t>(p);
  return absl::OkStatus();
}

}  // namespace

std::string HttpReason(int status) {
  return std::string(http::obsolete_reason(static_cast<http::status>(status)));
}

class SessionBase;

struct HttpServer::Impl {
  HttpServerOptions options;
  std::map<std::string, HttpHandler> routes;
  net::io_context ioc{1};
  std::optional<ssl::context> tls;
  tcp::acceptor acceptor{ioc};
  net::steady_timer retry{ioc};
  std::set<SessionBase*> sessions;  // io thread only
  std::thread thread;
  bool shut_down = false;  // guarded by the caller of Shutdown (not concurrent)

  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> bad_requests{0};
  std::atomic<uint64_t> timeouts{0};
  std::atomic<uint64_t> refused{0};
  std::atomic<uint64_t> accept_errors{0};
  std::atomic<int> open{0};

  void Accept();
};

// One connection. Lives as long as an operation of its own is pending (shared_from_this).
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void Close() = 0;
};

template <typename Stream>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(HttpServer::Impl* server, Stream stream)
      : server_(server), stream_(std::move(stream)), timer_(server->ioc) {
    server_->sessions.insert(this);
  }
  ~Session() override {
    server_->sessions.erase(this);
    if (served_) server_->open.fetch_sub(1, std::memory_order_relaxed);
  }

  // Over the connection limit: a 503 and the end.
  void Refuse() {
    server_->refused.fetch_add(1, std::memory_order_relaxed);
    if constexpr (kTls) {
      Close();  // no handshake for a connection that is not served
    } else {
      SendError(http::status::service_unavailable, "too many connections\n", 11);
    }
  }

  void Start() {
    served_ = true;  // counts against max_connections (a refused one does not)
    server_->open.fetch_add(1, std::memory_order_relaxed);
    if constexpr (kTls) {
      Lowest().expires_after(Chrono(server_->options.read_timeout));
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->Close();
                                self->WaitForRequest(true);
                              });
    } else {
      WaitForRequest(true);
    }
  }

  void Close() override {
    timer_.cancel();
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Lowest().close();
  }

 private:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  // Waits for the first bytes of a request — up to read_timeout on a new connection (one that
  // sends nothing is a slow client), idle_timeout between requests — then reads it.
  void WaitForRequest(bool first) {
    if (buffer_.size() > 0) return ReadRequest();
    const HttpServerOptions& o = server_->options;
    Lowest().expires_after(Chrono(first ? o.read_timeout : o.idle_timeout));
    stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this(), first](
                                                       beast::error_code ec, size_t n) {
      self->buffer_.commit(n);
      if (ec == beast::error::timeout && first) self->server_->timeouts.fetch_add(1);
      if (ec) return self->Close();  // closed, idle too long, or shut down
      self->ReadRequest();
    });
  }

  void ReadRequest() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_->options.max_header_bytes));
    parser_->body_limit(server_->options.max_body_bytes);
    // The stream's own timeout would close the socket: a timer of ours cancels the read
    // instead, so that the client can be told (408).
    Lowest().expires_never();
    timed_out_ = false;
    timer_.expires_after(Chrono(server_->options.read_timeout));
    timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec) return;  // the request arrived (or the session closed)
      self->timed_out_ = true;
      beast::error_code ignored;
      self->Lowest().socket().cancel(ignored);
    });
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       self->timer_.cancel();
                       self->OnRead(ec);
                     });
  }

  void OnRead(beast::error_code ec) {
    if (timed_out_) {
      server_->timeouts.fetch_add(1, std::memory_order_relaxed);
      // A TLS stream cut mid-record cannot carry an answer.
      if constexpr (kTls) return Close();
      return SendError(http::status::request_timeout, "the request did not arrive in time\n", 11);
    }
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted) return Close();
    if (ec == http::error::header_limit) {
      return SendError(http::status::request_header_fields_too_large,
                       absl::StrCat("request header larger than ",
                                    server_->options.max_header_bytes, " bytes\n"),
                       11);
    }
    if (ec == http::error::body_limit) {
      return SendError(
          http::status::payload_too_large,
          absl::StrCat("request body larger than ", server_->options.max_body_bytes, " bytes\n"),
          11);
    }
    if (ec) {
      // Whatever Beast could not parse; the version is unknown, so answer in HTTP/1.1.
      return SendError(http::status::bad_request, absl::StrCat("bad request: ", ec.message(), "\n"),
                       11);
    }
    Handle(parser_->get());
  }

  void Handle(const http::request<http::string_body>& req) {
    const unsigned version = req.version();
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      return SendError(http::status::method_not_allowed,
                       absl::StrCat("method ", Quote(std::string(req.method_string())),
                                    " not allowed; use GET or HEAD\n"),
                       version, {{"Allow", "GET, HEAD"}});
    }
    HttpRequest r;
    r.method = std::string(req.method_string());
    const std::string target(req.target());
    const size_t q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) r.query = target.substr(q + 1);
    r.accept = std::string(req[http::field::accept]);
    auto route = server_->routes.find(r.path);
    if (route == server_->routes.end()) {
      return SendError(http::status::not_found, absl::StrCat("no such path: ", Quote(r.path), "\n"),
                       version);
    }
    HttpResponse out;
    try {
      out = route->second(r);
    } catch (const std::exception& e) {
      out = HttpResponse{.status = 500, .body = absl::StrCat("internal error: ", e.what(), "\n")};
    }
    server_->requests.fetch_add(1, std::memory_order_relaxed);
    Send(static_cast<http::status>(out.status), std::move(out.body), out.content_type, version,
         out.headers, req.keep_alive(), req.method() == http::verb::head);
  }

  void SendError(http::status status, std::string body, unsigned version,
                 std::vector<std::pair<std::string, std::string>> headers = {}) {
    if (status != http::status::service_unavailable && status != http::status::request_timeout) {
      server_->bad_requests.fetch_add(1, std::memory_order_relaxed);
    }
    Send(status, std::move(body), "text/plain; charset=utf-8", version, headers, false, false);
  }

  void Send(http::status status, std::string body, const std::string& content_type,
            unsigned version, const std::vector<std::pair<std::string, std::string>>& headers,
            bool keep_alive, bool head) {
    response_ = {};
    response_.result(status);
    response_.version(version);
    response_.set(http::field::server, "flowscope");
    response_.set(http::field::content_type, content_type);
    for (const auto& [name, value] : headers) response_.set(name, value);
    response_.keep_alive(keep_alive);
    const size_t length = body.size();
    if (!head) response_.body() = std::move(body);
    response_.content_length(length);
    keep_alive_ = keep_alive;
    Lowest().expires_after(Chrono(server_->options.read_timeout));
    http::async_write(stream_, response_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        if (ec || !self->keep_alive_) return self->Close();
                        self->WaitForRequest(false);
                      });
  }

  HttpServer::Impl* server_;
  Stream stream_;
  net::steady_timer timer_;
  bool timed_out_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  bool keep_alive_ = false;
  bool served_ = false;
};

void HttpServer::Impl::Accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      // Out of file descriptors, say: the pending connection stays queued; look again soon.
      if (accept_errors.fetch_add(1, std::memory_order_relaxed) % 1000 == 0) {
        FLOWSCOPE_LOG_WARN("http: accept failed: {}; retrying", ec.message());
      }
      retry.expires_after(std::chrono::milliseconds(100));
      retry.async_wait([this](beast::error_code e) {
        if (!e) Accept();
      });
      return;
    }
    const bool over = open.load(std::memory_order_relaxed) >= options.max_connections;
    beast::tcp_stream stream(std::move(socket));
    if (tls) {
      auto s = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
          this, beast::ssl_stream<beast::tcp_stream>(std::move(stream), *tls));
      over ? s->Refuse() : s->Start();
    } else {
      auto s = std::make_shared<Session<beast::tcp_stream>>(this, std::move(stream));
      over ? s->Refuse() : s->Start();
    }
    Accept();
  });
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    HttpServerOptions options, std::map<std::string, HttpHandler> routes) {
  std::unique_ptr<HttpServer> server(new HttpServer());
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->routes = std::move(routes);
  const std::string& address = impl->options.address;
  std::string host;
  uint16_t port = 0;
  if (absl::Status s = SplitAddress(address, &host, &port); !s.ok()) return s;

  if (impl->options.tls.enabled()) {
    // The same files and checks as the gRPC listeners, so both fail alike.
    if (auto grpc_creds = ServerTlsCredentials(impl->options.tls); !grpc_creds.ok()) {
      return grpc_creds.status();
    }
    try {
      impl->tls.emplace(ssl::context::tls_server);
      impl->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                             ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                             ssl::context::no_tlsv1_1);
      impl->tls->use_certificate_chain_file(impl->options.tls.cert_file);
      impl->tls->use_private_key_file(impl->options.tls.key_file, ssl::context::pem);
      if (!impl->options.tls.client_ca_files.empty()) {
        for (const std::string& ca : impl->options.tls.client_ca_files) {
          impl->tls->load_verify_file(ca);
        }
        impl->tls->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
      }
    } catch (const boost::system::system_error& e) {
      return absl::InvalidArgumentError(
          absl::StrCat("http TLS (", impl->options.tls.cert_file, "): ", e.what()));
    }
  }

  beast::error_code ec;
  tcp::endpoint endpoint;
  if (host.empty()) {
    endpoint = tcp::endpoint(net::ip::address_v6::any(), port);  // both families, below
  } else {
    const net::ip::address ip = net::ip::make_address(host, ec);
    if (ec) {
      // A name: the first address it resolves to, as a listener address.
      tcp::resolver resolver(impl->ioc);
      auto results = resolver.resolve(host, std::to_string(port), ec);
      if (ec || results.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("http address \"", Quote(address),
                                                       "\": ", ec ? ec.message() : "no address"));
      }
      endpoint = results.begin()->endpoint();
    } else {
      endpoint = tcp::endpoint(ip, port);
    }
  }
  auto fail = [&](const char* step) {
    return absl::UnavailableError(
        absl::StrCat("http address ", address, ": cannot ", step, ": ", ec.message()));
  };
  impl->acceptor.open(endpoint.protocol(), ec);
  if (ec && host.empty()) {
    // No IPv6 on this host: every IPv4 interface.
    endpoint = tcp::endpoint(net::ip::address_v4::any(), port);
    impl->acceptor.open(endpoint.protocol(), ec);
  }
  if (ec) return fail("open a socket");
  if (endpoint.protocol() == tcp::v6() && host.empty()) {
    impl->acceptor.set_option(net::ip::v6_only(false), ec);
  }
  impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  impl->acceptor.bind(endpoint, ec);
  if (ec) return fail("bind");
  impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  const tcp::endpoint local = impl->acceptor.local_endpoint(ec);
  server->port_ = local.port();
  server->bound_ = local.address().is_v6()
                       ? absl::StrCat("[", local.address().to_string(), "]:", local.port())
                       : absl::StrCat(local.address().to_string(), ":", local.port());
  server->tls_ = impl->tls.has_value();
  impl->Accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->ioc.run(); });
  server->impl_ = std::move(impl);
  return server;
}

void HttpServer::Shutdown() {
  if (!impl_ || impl_->shut_down) return;
  impl_->shut_down = true;
  Impl* impl = impl_.get();
  // On the server's thread: nothing new is accepted, every connection closes; the thread's
  // run() returns once the last operation has completed.
  net::post(impl->ioc, [impl] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
    impl->retry.cancel();
    for (SessionBase* s : std::set<SessionBase*>(impl->sessions)) s->Close();
  });
  if (impl->thread.joinable()) impl->thread.join();
}

HttpServer::~HttpServer() { Shutdown(); }

HttpServer::Stats HttpServer::stats() const {
  Stats s;
  if (!impl_) return s;
  s.requests = impl_->requests.load();
  s.bad_requests = impl_->bad_requests.load();
  s.timeouts = impl_->timeouts.load();
  s.refused = impl_->refused.load();
  s.accept_errors = impl_->accept_errors.load();
  s.open_connections = impl_->open.load();
  return s;
}

}  // namespace flowscope
