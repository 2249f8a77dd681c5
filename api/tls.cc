#include "api/tls.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace flowscope {

absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", path, " is not a PEM file"));
  }
  return text.str();
}

namespace {

absl::StatusOr<std::string> ReadAll(const std::vector<std::string>& paths,
                                    const std::string& what) {
  std::string all;
  for (const std::string& p : paths) {
    auto pem = ReadPemFile(p, what);
    if (!pem.ok()) return pem.status();
    all += *pem;
    if (!all.empty() && all.back() != '\n') all += '\n';
  }
  return all;
}

// That the PEM key is the private key of the PEM certificate (the first in the file), so a
// mismatch is named at start rather than as a failed listener or handshake.
absl::Status CheckKeyMatchesCertificate(const std::string& cert_pem, const std::string& key_pem,
                                        const std::string& cert_file, const std::string& key_file) {
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(
      BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr), X509_free);
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS certificate ", cert_file, " holds no readable PEM certificate"));
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())), BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("TLS key ", key_file, " holds no readable (unencrypted) PEM private key"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("TLS key ", key_file,
                                                   " does not match the certificate ", cert_file,
                                                   " (another key pair)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerTlsCredentials(
    const TlsServerFiles& files) {
  if (files.cert_file.empty() || files.key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both a certificate file and a key file (only one was given)");
  }
  auto cert = ReadPemFile(files.cert_file, "TLS certificate");
  if (!cert.ok()) return cert.status();
  auto key = ReadPemFile(files.key_file, "TLS key");
  if (!key.ok()) return key.status();
  if (absl::Status s = CheckKeyMatchesCertificate(*cert, *key, files.cert_file, files.key_file);
      !s.ok()) {
    return s;
  }
  auto cas = ReadAll(files.client_ca_files, "client CA file");
  if (!cas.ok()) return cas.status();
  grpc::SslServerCredentialsOptions options(
      files.client_ca_files.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                    : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = *cas;
  options.pem_key_cert_pairs.push_back({*key, *cert});
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<ClientTls> ClientTlsCredentials(const TlsClientOptions& options) {
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError(
        "a TLS client certificate needs both the certificate file and the key file");
  }
  ClientTls out;
  std::string cert, key;
  if (!options.cert_file.empty()) {
    auto c = ReadPemFile(options.cert_file, "TLS client certificate");
    if (!c.ok()) return c.status();
    auto k = ReadPemFile(options.key_file, "TLS client key");
    if (!k.ok()) return k.status();
    if (absl::Status s = CheckKeyMatchesCertificate(*c, *k, options.cert_file, options.key_file);
        !s.ok()) {
      return s;
    }
    cert = *std::move(c);
    key = *std::move(k);
  }
  if (!options.server_name.empty()) out.args.SetSslTargetNameOverride(options.server_name);
  if (options.allow_insecure) {
    // Encrypted, but the server's certificate is not checked at all.
    grpc::experimental::TlsChannelCredentialsOptions tls;
    tls.set_verify_server_certs(false);
    tls.set_check_call_host(false);
    tls.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
    if (!cert.empty()) {
      tls.set_certificate_provider(
          std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
              std::vector<grpc::experimental::IdentityKeyCertPair>{{key, cert}}));
      tls.watch_identity_key_cert_pairs();
    }
    out.credentials = grpc::experimental::TlsCredentials(tls);
    return out;
  }
  auto cas = ReadAll(options.ca_files, "CA file");
  if (!cas.ok()) return cas.status();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = *cas;  // empty: the system's roots
  ssl.pem_private_key = key;
  ssl.pem_cert_chain = cert;
  out.credentials = grpc::SslCredentials(ssl);
  return out;
}

}  // namespace flowscope
