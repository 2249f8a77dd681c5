// TLS end to end, with certificates made by openssl for the test: the CLI against an observer
// serving TLS (trusted CA, tls:// targets, server-name override, wrong CA, skipping
// verification), mutual TLS (refused without a client certificate, accepted with one), basic
// auth sent on every call over TLS and refused without it, bad settings refused before
// connecting, and the relay reaching an observer over TLS. Targets are IP addresses: resolving
// a name would go through c-ares, whose resolver leaks a few bytes that LeakSanitizer reports.
#include "api/tls.h"

#include <gmock/gmock.h>
#include <grpcpp/security/auth_metadata_processor.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "api/grpc_server.h"
#include "cmd/cli/commands.h"
#include "observer/observer_service.h"
#include "relay/peer_pool.h"
#include "relay/relay_service.h"
#include "tests/testing/shell.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/wait.h"

namespace flowscope::cli {
namespace {

using ::testing::HasSubstr;

constexpr char kServerName[] = "node-1.flowscope.test";

// Accepts every call and remembers the authorization header it carried.
class AuthRecorder final : public grpc::AuthMetadataProcessor {
 public:
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& metadata, grpc::AuthContext*, OutputMetadata*,
                       OutputMetadata*) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = metadata.find("authorization");
    last_ = it == metadata.end() ? "" : std::string(it->second.data(), it->second.size());
    return grpc::Status::OK;
  }
  std::string last() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }

 private:
  std::mutex mu_;
  std::string last_;
};

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_.dir =
        (std::filesystem::temp_directory_path() / ("fs-tls-" + std::to_string(getpid()))).string();
    certs_.server_name = kServerName;
    std::filesystem::create_directories(certs_.dir);
    ASSERT_TRUE(certs_.Make());
    ring_ = std::move(observer::Ring::Create(127)).value();
    table_ = std::make_unique<observer::EndpointTable>("default");
    builder_ = std::make_unique<observer::FlowBuilder>(*table_, "node-1", nullptr, 1);
    service_ = std::make_unique<observer::ObserverService>(
        *ring_, *table_, *builder_,
        observer::ObserverOptions{.node_name = "node-1", .address = "", .tls = true});
    // TLS, with an auth processor that records basic auth.
    auto creds = ServerTlsCredentials({.cert_file = certs_.Path("server.crt"),
                                       .key_file = certs_.Path("server.key"),
                                       .client_ca_files = {}});
    ASSERT_TRUE(creds.ok()) << creds.status();
    recorder_ = std::make_shared<AuthRecorder>();
    (*creds)->SetAuthMetadataProcessor(recorder_);
    tls_ = std::move(GrpcServer::Start({service_.get()}, {"", "127.0.0.1:0", *creds})).value();
    // Mutual TLS.
    auto mtls = ServerTlsCredentials({.cert_file = certs_.Path("server.crt"),
                                      .key_file = certs_.Path("server.key"),
                                      .client_ca_files = {certs_.Path("ca.crt")}});
    ASSERT_TRUE(mtls.ok()) << mtls.status();
    mtls_ = std::move(GrpcServer::Start({service_.get()}, {"", "127.0.0.1:0", *mtls})).value();
  }
  void TearDown() override {
    if (tls_) tls_->Shutdown(absl::Milliseconds(100));
    if (mtls_) mtls_->Shutdown(absl::Milliseconds(100));
    std::filesystem::remove_all(certs_.dir);
  }

  ServerOptions Options(const GrpcServer& s) const {
    ServerOptions o;
    o.server = absl::StrCat("127.0.0.1:", s.tcp_port());
    o.tls = true;
    o.tls_options.ca_files = {certs_.Path("ca.crt")};
    o.dial_timeout = absl::Seconds(2);
    return o;
  }

  // `flowscope status`: its exit status, and what it printed in *text.
  int StatusOf(const ServerOptions& o, std::string* text) {
    if (absl::Status s = CheckConnectionSettings(o); !s.ok()) {
      *text = std::string(s.message());
      return 1;
    }
    std::ostringstream out, err;
    const int rc = Status(o, Format::kCompact, out, err);
    *text = out.str() + err.str();
    return rc;
  }

  testing::TestPki certs_;
  std::unique_ptr<observer::Ring> ring_;
  std::unique_ptr<observer::EndpointTable> table_;
  std::unique_ptr<observer::FlowBuilder> builder_;
  std::unique_ptr<observer::ObserverService> service_;
  std::shared_ptr<AuthRecorder> recorder_;
  std::unique_ptr<GrpcServer> tls_, mtls_;
};

TEST_F(TlsTest, TrustedCaServerNameAndTlsPrefix) {
  std::string text;
  EXPECT_EQ(StatusOf(Options(*tls_), &text), 0) << text;
  EXPECT_THAT(text, HasSubstr("Healthcheck (via 127.0.0.1:"));

  ServerOptions prefixed = Options(*tls_);
  prefixed.tls = false;
  prefixed.server = "tls://127.0.0.1:" + std::to_string(tls_->tcp_port());
  EXPECT_EQ(StatusOf(prefixed, &text), 0) << text;

  ServerOptions named = Options(*tls_);
  named.tls_options.server_name = kServerName;
  EXPECT_EQ(StatusOf(named, &text), 0) << text;
  named.tls_options.server_name = "deathstar.flowscope.test";
  EXPECT_EQ(StatusOf(named, &text), 1);
  EXPECT_THAT(text, HasSubstr("over TLS")) << "a certificate for another name is refused";
}

TEST_F(TlsTest, AnUntrustedCertificateIsRefusedUnlessVerificationIsOff) {
  ServerOptions rogue = Options(*tls_);
  rogue.tls_options.ca_files = {certs_.Path("rogue.crt")};
  std::string text;
  EXPECT_EQ(StatusOf(rogue, &text), 1);
  EXPECT_THAT(text, HasSubstr("is its certificate trusted"));
  ServerOptions insecure = rogue;
  insecure.tls_options.ca_files.clear();
  insecure.tls_options.allow_insecure = true;
  EXPECT_EQ(StatusOf(insecure, &text), 0) << text;
  ServerOptions plaintext = Options(*tls_);
  plaintext.tls = false;
  plaintext.tls_options = {};
  EXPECT_EQ(StatusOf(plaintext, &text), 1) << "plaintext to a TLS listener fails";
}

TEST_F(TlsTest, MutualTlsNeedsAClientCertificate) {
  std::string text;
  EXPECT_EQ(StatusOf(Options(*mtls_), &text), 1) << "refused without a client certificate";
  ServerOptions with_cert = Options(*mtls_);
  with_cert.tls_options.cert_file = certs_.Path("client.crt");
  with_cert.tls_options.key_file = certs_.Path("client.key");
  EXPECT_EQ(StatusOf(with_cert, &text), 0) << text;
}

TEST_F(TlsTest, BasicAuthGoesWithEveryCallOverTlsOnly) {
  ServerOptions o = Options(*tls_);
  o.basic_auth_username = "han";
  o.basic_auth_password = "solo";
  std::string text;
  ASSERT_EQ(StatusOf(o, &text), 0) << text;
  EXPECT_EQ(recorder_->last(), "Basic " + absl::Base64Escape("han:solo"));

  ServerOptions clear;
  clear.server = "127.0.0.1:1";
  clear.basic_auth_username = "han";
  clear.basic_auth_password = "solo";
  EXPECT_EQ(StatusOf(clear, &text), 1);
  EXPECT_THAT(text, HasSubstr("basic auth needs TLS"));
  o.basic_auth_password.clear();
  EXPECT_EQ(StatusOf(o, &text), 1);
  EXPECT_THAT(text, HasSubstr("both --basic-auth-username and --basic-auth-password"));
}

TEST_F(TlsTest, BadSettingsAreRefusedBeforeConnecting) {
  std::string text;
  ServerOptions files_without_tls;
  files_without_tls.tls_options.ca_files = {certs_.Path("ca.crt")};
  EXPECT_EQ(StatusOf(files_without_tls, &text), 1);
  EXPECT_THAT(text, HasSubstr("without TLS"));
  ServerOptions missing = Options(*tls_);
  missing.tls_options.ca_files = {certs_.Path("nope.crt")};
  EXPECT_EQ(StatusOf(missing, &text), 1);
  EXPECT_THAT(text, HasSubstr("nope.crt"));
  ServerOptions unix_tls = Options(*tls_);
  unix_tls.server = "unix:///tmp/x.sock";
  EXPECT_EQ(StatusOf(unix_tls, &text), 1);
  EXPECT_THAT(text, HasSubstr("TLS is for TCP servers"));
  EXPECT_THAT(ServerTlsCredentials(
                  {.cert_file = certs_.Path("server.crt"), .key_file = "", .client_ca_files = {}})
                  .status()
                  .message(),
              HasSubstr("both a certificate file and a key file"));
  EXPECT_THAT(ServerTlsCredentials({.cert_file = certs_.Path("server.ext"),
                                    .key_file = certs_.Path("server.key"),
                                    .client_ca_files = {}})
                  .status()
                  .message(),
              HasSubstr("is not a PEM file"));
  // A key of another pair is named as that, not as "address in use" when the listener fails.
  const std::string mismatch =
      std::string(ServerTlsCredentials({.cert_file = certs_.Path("server.crt"),
                                        .key_file = certs_.Path("client.key"),
                                        .client_ca_files = {}})
                      .status()
                      .message());
  EXPECT_THAT(mismatch, HasSubstr("does not match the certificate"));
  EXPECT_THAT(mismatch, HasSubstr("client.key"));
  ServerOptions wrong_client_key = Options(*mtls_);
  wrong_client_key.tls_options.cert_file = certs_.Path("client.crt");
  wrong_client_key.tls_options.key_file = certs_.Path("server.key");
  EXPECT_EQ(StatusOf(wrong_client_key, &text), 1);
  EXPECT_THAT(text, HasSubstr("does not match the certificate"));
}

TEST_F(TlsTest, TheRelayReachesAnObserverOverTls) {
  relay::PoolOptions po;
  po.static_peers = {absl::StrCat("127.0.0.1:", mtls_->tcp_port())};
  po.refresh = absl::Milliseconds(100);
  po.tls = TlsClientOptions{.ca_files = {certs_.Path("ca.crt")},
                            .cert_file = certs_.Path("client.crt"),
                            .key_file = certs_.Path("client.key"),
                            .server_name = kServerName};
  relay::PeerPool pool(po);
  pool.Start();
  relay::RelayService relay(pool, relay::RelayOptions{});
  auto server = std::move(GrpcServer::Start({&relay}, {"", "127.0.0.1:0"})).value();
  ServerOptions o;
  o.server = absl::StrCat("127.0.0.1:", server->tcp_port());
  std::string text;
  testing::WaitUntil([&] {
    return StatusOf(o, &text) == 0 && text.find("Connected Nodes: 1/1") != std::string::npos;
  });
  EXPECT_THAT(text, HasSubstr("Connected Nodes: 1/1"));
  std::ostringstream out, err;
  EXPECT_EQ(ListNodes(o, "json", out, err), 0) << err.str();
  EXPECT_THAT(out.str(), HasSubstr(absl::StrCat("\"server_name\": \"", kServerName, "\"")));
  server->Shutdown(absl::Milliseconds(100));
  pool.Stop();
}

}  // namespace
}  // namespace flowscope::cli
