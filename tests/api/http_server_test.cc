#include "api/http_server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/listener.h"
#include "tests/testing/http_client.h"
#include "tests/testing/shell.h"
#include "tests/testing/wait.h"

namespace flowscope {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

using Client = testing::HttpClient;

std::string Get(const std::string& path, const std::string& extra = "") {
  return absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: test\r\n", extra, "\r\n");
}

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(HttpServerOptions o = {}) {
    if (o.address.empty()) o.address = "127.0.0.1:0";
    std::map<std::string, HttpHandler> routes;
    routes["/healthz"] = [](const HttpRequest&) { return HttpResponse{.body = "ok\n"}; };
    routes["/echo"] = [](const HttpRequest& r) {
      return HttpResponse{
          .content_type = "text/x-echo",
          .body = absl::StrCat(r.method, " ", r.path, " q=", r.query, " accept=", r.accept, "\n"),
          .headers = {{"X-Test", "yes"}}};
    };
    routes["/throws"] = [](const HttpRequest&) -> HttpResponse {
      throw std::runtime_error("handler failed");
    };
    auto s = HttpServer::Start(o, std::move(routes));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(s).value();
  }
  // A request on a fresh connection; the response.
  std::string Ask(const std::string& request, bool head = false) {
    Client c(server_->port());
    EXPECT_TRUE(c.connected());
    EXPECT_TRUE(c.Send(request));
    return c.ReadResponse(head);
  }
  bool Healthy() { return Ask(Get("/healthz")).find("200 OK") != std::string::npos; }

  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, RoutesGetAndHeadWithTheirHeaders) {
  Start();
  EXPECT_THAT(server_->bound(), StartsWith("127.0.0.1:"));
  const std::string r = Ask(Get("/echo?x=1&y=2", "Accept: application/openmetrics-text\r\n"));
  EXPECT_THAT(r, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(r, HasSubstr("Content-Type: text/x-echo\r\n"));
  EXPECT_THAT(r, HasSubstr("X-Test: yes\r\n"));
  EXPECT_THAT(r, HasSubstr("\r\n\r\nGET /echo q=x=1&y=2 accept=application/openmetrics-text\n"));

  const std::string head =
      Ask(absl::StrCat("HEAD /healthz HTTP/1.1\r\nHost: test\r\n\r\n"), /*head=*/true);
  EXPECT_THAT(head, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(head, HasSubstr("Content-Length: 3\r\n"));
  EXPECT_THAT(head, ::testing::EndsWith("\r\n\r\n")) << "no body for HEAD";
  EXPECT_EQ(server_->stats().requests, 2u);
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  Start();
  Client c(server_->port());
  ASSERT_TRUE(c.Send(Get("/healthz") + Get("/echo")));  // pipelined
  EXPECT_THAT(c.ReadResponse(), HasSubstr("\r\n\r\nok\n"));
  EXPECT_THAT(c.ReadResponse(), HasSubstr("GET /echo"));
  ASSERT_TRUE(c.Send(Get("/healthz", "Connection: close\r\n")));
  EXPECT_THAT(c.ReadResponse(), HasSubstr("Connection: close"));
  EXPECT_TRUE(c.Closed());
}

TEST_F(HttpServerTest, EveryBadRequestGetsAStatusAndTheServerGoesOn) {
  Start();
  struct Case {
    std::string request;
    std::string status;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", "405 Method Not Allowed",
       "method POST not allowed"},
      {"DELETE /metrics HTTP/1.1\r\nHost: t\r\n\r\n", "405", "use GET or HEAD"},
      {Get("/nope"), "404 Not Found", "no such path: /nope"},
      {"HELLO THERE\r\n\r\n", "400 Bad Request", "bad request"},
      {"GET / HTTP/9.9\r\n\r\n", "400", "bad request"},
      {"GET /healthz HTTP/1.1\r\nHost: t\r\nBroken header line\r\n\r\n", "400", "bad request"},
      {Get("/healthz", "X-Big: " + std::string(9000, 'a') + "\r\n"),
       "431 Request Header Fields Too Large", "larger than 8192 bytes"},
      {"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n",
       "413 Payload Too Large", "larger than 65536 bytes"},
      {std::string("GET /\0\x01\xff HTTP/1.1\r\n\r\n", 22), "400", "bad request"},
  };
  for (const Case& c : cases) {
    Client client(server_->port());
    ASSERT_TRUE(client.Send(c.request));
    const std::string r = client.ReadResponse();
    EXPECT_THAT(r, HasSubstr(c.status)) << c.request.substr(0, 60);
    EXPECT_THAT(r, HasSubstr(c.says)) << c.request.substr(0, 60);
    if (c.status != "404 Not Found") {
      EXPECT_TRUE(client.Closed()) << "closed after an error: " << c.request.substr(0, 60);
    }
    EXPECT_TRUE(Healthy());
  }
  EXPECT_THAT(Ask(Get("/throws")), HasSubstr("500 Internal Server Error"));
  EXPECT_GE(server_->stats().bad_requests, cases.size());
  EXPECT_TRUE(Healthy());
}

TEST_F(HttpServerTest, SlowAndIdleClientsAreTimedOut) {
  Start({.read_timeout = absl::Milliseconds(300), .idle_timeout = absl::Milliseconds(300)});
  // Half a request, then nothing (slowloris): 408, closed.
  Client slow(server_->port());
  ASSERT_TRUE(slow.Send("GET /healthz HTTP/1.1\r\nHost: t\r\n"));
  EXPECT_THAT(slow.ReadResponse(), HasSubstr("408 Request Timeout"));
  EXPECT_TRUE(slow.Closed());
  // Connected, nothing sent: closed.
  Client idle(server_->port());
  EXPECT_TRUE(idle.Closed());
  // Kept alive after an answer and then quiet: closed.
  Client quiet(server_->port());
  ASSERT_TRUE(quiet.Send(Get("/healthz")));
  EXPECT_THAT(quiet.ReadResponse(), HasSubstr("200 OK"));
  EXPECT_TRUE(quiet.Closed());
  EXPECT_GE(server_->stats().timeouts, 2u);
  EXPECT_TRUE(Healthy());
}

TEST_F(HttpServerTest, AThousandConnectionsAreAnsweredWithinTheLimit) {
  RaiseOpenFileLimit();
  Start({.max_connections = 64});
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 1000; ++i) {
    clients.push_back(std::make_unique<Client>(server_->port()));
    ASSERT_TRUE(clients.back()->connected()) << i;
  }
  int ok = 0, busy = 0;
  for (auto& c : clients) {
    ASSERT_TRUE(c->Send(Get("/healthz")));
    const std::string r = c->ReadResponse();
    ok += r.find("200 OK") != std::string::npos;
    busy += r.find("503 Service Unavailable") != std::string::npos;
  }
  EXPECT_EQ(ok + busy, 1000) << "every connection gets an answer";
  EXPECT_GT(busy, 0);
  EXPECT_LE(server_->stats().open_connections, 64);
  clients.clear();
  EXPECT_TRUE(testing::WaitUntil([&] { return server_->stats().open_connections == 0; }));
  EXPECT_TRUE(Healthy()) << "served again once connections closed";
}

TEST_F(HttpServerTest, AddressesAreCheckedAndABusyPortIsRefused) {
  Start();
  auto again = HttpServer::Start({.address = server_->bound()}, {});
  ASSERT_FALSE(again.ok());
  EXPECT_THAT(std::string(again.status().message()), HasSubstr(server_->bound()));
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("in use"));
  for (const char* bad : {"9965", "127.0.0.1:http", "127.0.0.1:70000", "no.such.host.invalid:1"}) {
    auto s = HttpServer::Start({.address = bad}, {});
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr("http address")) << bad;
  }
  auto any = HttpServer::Start({.address = ":0"}, {});
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_THAT((*any)->bound(), ::testing::AnyOf(StartsWith("[::]:"), StartsWith("0.0.0.0:")));
}

TEST_F(HttpServerTest, ServesHttpsWithTheGrpcCertificateFlags) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("fs-https-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  int rc = 0;
  const std::string out = testing::RunShell(
      absl::StrCat("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ",
                   "-days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -keyout ",
                   (dir / "key.pem").string(), " -out ", (dir / "cert.pem").string()),
      &rc);
  ASSERT_EQ(rc, 0) << out;
  Start(
      {.tls = {.cert_file = (dir / "cert.pem").string(), .key_file = (dir / "key.pem").string()}});
  EXPECT_TRUE(server_->tls());
  // A real TLS client (OpenSSL's) that verifies the certificate.
  const std::string answer = testing::RunShell(absl::StrCat(
      "printf 'GET /healthz HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n' | ",
      "timeout 10 openssl s_client -quiet -verify_return_error -CAfile ",
      (dir / "cert.pem").string(), " -connect 127.0.0.1:", server_->port()));
  EXPECT_THAT(answer, HasSubstr("HTTP/1.1 200 OK"));
  EXPECT_THAT(answer, HasSubstr("\r\n\r\nok\n"));
  // Plain HTTP to the TLS port is not served, and the server goes on.
  Client plain(server_->port());
  ASSERT_TRUE(plain.Send(Get("/healthz")));
  EXPECT_EQ(plain.ReadResponse(), "");
  // A key that is not the certificate's is refused at start, naming the files.
  auto wrong = HttpServer::Start(
      {.address = "127.0.0.1:0",
       .tls = {.cert_file = (dir / "cert.pem").string(), .key_file = "/nonexistent.key"}},
      {});
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(std::string(wrong.status().message()), HasSubstr("/nonexistent.key"));
  std::filesystem::remove_all(dir);
}

TEST_F(HttpServerTest, ShutdownClosesOpenConnections) {
  Start();
  Client c(server_->port());
  ASSERT_TRUE(c.Send(Get("/healthz")));
  EXPECT_THAT(c.ReadResponse(), HasSubstr("200 OK"));  // kept alive
  server_->Shutdown();
  EXPECT_TRUE(c.Closed());
  Client after(server_->port());
  EXPECT_FALSE(after.connected());
}

}  // namespace
}  // namespace flowscope
