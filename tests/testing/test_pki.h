// Certificates made by openssl for a test: a CA, a server certificate (for a given name,
// localhost and 127.0.0.1) and a client certificate signed by it, and a second CA ("rogue")
// that signed nothing here. Files: ca.crt/key, rogue.crt/key, server.crt/key, client.crt/key.
//
//   testing::TestPki pki{.dir = "/tmp/x", .server_name = "node-1.flowscope.test"};
//   ASSERT_TRUE(pki.Make());
//   pki.Path("server.crt");
#ifndef FLOWSCOPE_TESTS_TESTING_TEST_PKI_H_
#define FLOWSCOPE_TESTS_TESTING_TEST_PKI_H_

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "tests/testing/shell.h"

namespace flowscope::testing {

struct TestPki {
  std::string dir;
  std::string server_name = "localhost";

  std::string Path(const std::string& name) const { return dir + "/" + name; }

  // Writes the files into `dir` (which must exist); false, with the failing command's output as
  // a test failure, if openssl fails.
  bool Make() const {
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    auto ca = [&](const std::string& name) {
      return Sh(absl::StrCat("openssl req -x509 ", key, " -days 2 -subj '/CN=", name,
                             " test CA' -keyout ", Path(name + ".key"), " -out ",
                             Path(name + ".crt")));
    };
    auto leaf = [&](const std::string& name, const std::string& cn, const std::string& ext) {
      std::ofstream(Path(name + ".ext")) << ext << "\n";
      return Sh(absl::StrCat("openssl req ", key, " -subj '/CN=", cn, "' -keyout ",
                             Path(name + ".key"), " -out ", Path(name + ".csr"))) &&
             Sh(absl::StrCat("openssl x509 -req -days 2 -in ", Path(name + ".csr"), " -CA ",
                             Path("ca.crt"), " -CAkey ", Path("ca.key"), " -CAcreateserial -out ",
                             Path(name + ".crt"), " -extfile ", Path(name + ".ext")));
    };
    return ca("ca") && ca("rogue") &&
           leaf("server", server_name,
                absl::StrCat("subjectAltName=DNS:", server_name, ",DNS:localhost,IP:127.0.0.1")) &&
           leaf("client", "flowscope-test-client", "extendedKeyUsage=clientAuth");
  }

 private:
  static bool Sh(const std::string& cmd) {
    int status = 0;
    const std::string out = RunShell(cmd, &status);
    if (status != 0) ADD_FAILURE() << cmd << "\n" << out;
    return status == 0;
  }
};

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_TEST_PKI_H_
