// `flowscope version`'s line, and the version comparison behind the CLI's warning about a newer
// server (Hubble's: only major.minor count; missing or unparsable versions never warn).
#include "api/version.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace flowscope {
namespace {

TEST(VersionTest, BuildInfoHasHubblesShape) {
  EXPECT_THAT(
      BuildInfo("flowscope"),
      ::testing::MatchesRegex("flowscope v[0-9]+\\.[0-9]+\\.[0-9]+(@[^ ]+)? compiled "
                              "with (gcc|clang) [0-9]+\\.[0-9]+\\.[0-9]+ on linux/[a-z0-9]+"));
}

TEST(VersionTest, OnlyANewerMajorOrMinorIsLower) {
  EXPECT_TRUE(VersionIsLower("0.1.0", "0.2.0"));
  EXPECT_TRUE(VersionIsLower("0.9.9", "v1.0.0"));
  EXPECT_TRUE(VersionIsLower("v1.2.3", "1.3.0-rc1"));
  EXPECT_FALSE(VersionIsLower("0.1.0", "0.1.7")) << "patch releases do not count";
  EXPECT_FALSE(VersionIsLower("0.2.0", "0.1.0"));
  EXPECT_FALSE(VersionIsLower("0.1.0", "0.1.0+build"));
  EXPECT_FALSE(VersionIsLower("0.1.0", ""));
  EXPECT_FALSE(VersionIsLower("0.1.0", "flowscope"));
  EXPECT_FALSE(VersionIsLower("0.1.0", "1.x"));
}

}  // namespace
}  // namespace flowscope
