// A gtest fixture base for tests that run real BPF and traffic: skips (saying why) where bpf()
// is unavailable, otherwise creates a TestNetwork and a scratch directory, and removes both in
// TearDown even when the test failed. Derived SetUp()s call NetnsTestBase::SetUp() first and
// return if IsSkipped() or HasFatalFailure().
#ifndef FLOWSCOPE_TESTS_TESTING_NETNS_TEST_BASE_H_
#define FLOWSCOPE_TESTS_TESTING_NETNS_TEST_BASE_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "tests/testing/bpf_env.h"
#include "tests/testing/netns.h"

namespace flowscope::testing {

class NetnsTestBase : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = BpfUnavailableReason()) GTEST_SKIP() << *reason;
    auto net = TestNetwork::Create();
    ASSERT_TRUE(net.ok()) << net.status();
    net_ = std::move(net).value();
    dir_ = std::filesystem::temp_directory_path() / ("fs-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }

  void TearDown() override {
    net_.reset();  // namespaces, and with them every interface, go away
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::unique_ptr<TestNetwork> net_;
  std::filesystem::path dir_;
};

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_NETNS_TEST_BASE_H_
