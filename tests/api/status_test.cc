#include <gtest/gtest.h>

#include <string>

#include "api/grpc_status.h"
#include "api/logging.h"
#include "api/status_macros.h"

namespace flowscope {
namespace {

int evaluations = 0;

absl::Status Step(bool ok) {
  ++evaluations;
  return ok ? absl::OkStatus() : absl::NotFoundError("no such step");
}

absl::StatusOr<std::string> Name(bool ok) {
  ++evaluations;
  if (!ok) return absl::InvalidArgumentError("bad name");
  return std::string("xwing");
}

absl::Status TwoSteps(bool first, bool second, int* reached) {
  FLOWSCOPE_RETURN_IF_ERROR(Step(first));
  *reached = 1;
  FLOWSCOPE_RETURN_IF_ERROR(Step(second));
  *reached = 2;
  return absl::OkStatus();
}

absl::StatusOr<size_t> NameLength(bool ok) {
  FLOWSCOPE_ASSIGN_OR_RETURN(std::string name, Name(ok));
  FLOWSCOPE_ASSIGN_OR_RETURN(auto again, Name(ok));  // a second use in one scope
  return name.size() + again.size();
}

TEST(StatusMacrosTest, ReturnIfErrorStopsAtTheFirstError) {
  int reached = 0;
  evaluations = 0;
  EXPECT_TRUE(TwoSteps(true, true, &reached).ok());
  EXPECT_EQ(reached, 2);
  EXPECT_EQ(evaluations, 2);

  reached = 0;
  evaluations = 0;
  absl::Status s = TwoSteps(false, true, &reached);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(reached, 0);
  EXPECT_EQ(evaluations, 1) << "expression evaluated exactly once";

  EXPECT_EQ(TwoSteps(true, false, &reached).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(reached, 1);
}

TEST(StatusMacrosTest, AssignOrReturnMovesTheValueOrReturnsTheError) {
  evaluations = 0;
  auto ok = NameLength(true);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 10u);
  EXPECT_EQ(evaluations, 2);

  evaluations = 0;
  auto bad = NameLength(false);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "bad name");
  EXPECT_EQ(evaluations, 1);
}

TEST(GrpcStatusTest, ConvertsEveryCanonicalCodeBothWays) {
  for (int code = 0; code <= 16; ++code) {
    const absl::Status a(static_cast<absl::StatusCode>(code), code == 0 ? "" : "message");
    const grpc::Status g = ToGrpcStatus(a);
    EXPECT_EQ(static_cast<int>(g.error_code()), code);
    if (code != 0) {
      EXPECT_EQ(g.error_message(), "message");
    }
    EXPECT_EQ(FromGrpcStatus(g), a);
  }
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError("bad filter")).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(LoggingTest, ParsesLevelsAndRejectsUnknownOnes) {
  EXPECT_EQ(*log::ParseLevel("debug"), log::Level::kDebug);
  EXPECT_EQ(*log::ParseLevel("INFO"), log::Level::kInfo);
  EXPECT_EQ(*log::ParseLevel("warning"), log::Level::kWarn);
  EXPECT_EQ(*log::ParseLevel("off"), log::Level::kOff);
  auto bad = log::ParseLevel("verbose");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("\"verbose\""), std::string_view::npos);
  for (auto level : {log::Level::kTrace, log::Level::kDebug, log::Level::kInfo, log::Level::kWarn,
                     log::Level::kError, log::Level::kOff}) {
    EXPECT_EQ(*log::ParseLevel(log::LevelName(level)), level);
  }
}

TEST(LoggingTest, InitFiltersByLevel) {
  log::Init("status_test", log::Level::kWarn);
  EXPECT_FALSE(spdlog::should_log(spdlog::level::info));
  EXPECT_TRUE(spdlog::should_log(spdlog::level::warn));
  testing::internal::CaptureStderr();
  FLOWSCOPE_LOG_INFO("hidden {}", 1);
  FLOWSCOPE_LOG_ERROR("shown {}", 2);
  spdlog::default_logger()->flush();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.find("hidden"), std::string::npos);
  EXPECT_NE(err.find("error status_test: shown 2"), std::string::npos) << err;
  log::SetLevel(log::Level::kInfo);
  EXPECT_TRUE(spdlog::should_log(spdlog::level::info));
}

}  // namespace
}  // namespace flowscope
