// flowscope's version, once: the number comes from CMake's project(VERSION ...) and every
// program and status answer names it through these.
//
//   resp->set_version(std::string(kObserverVersion));  // "flowscope v0.1.0"
#ifndef FLOWSCOPE_API_VERSION_H_
#define FLOWSCOPE_API_VERSION_H_

#include <string>

#include "absl/strings/string_view.h"

#ifndef FLOWSCOPE_VERSION
#error "FLOWSCOPE_VERSION comes from CMake (flowscope::api)"
#endif

namespace flowscope {

inline constexpr absl::string_view kVersionNumber = FLOWSCOPE_VERSION;
// What the observer and the CLI report (Hubble's "hubble v0.x" shape), and the relay.
inline constexpr absl::string_view kObserverVersion = "flowscope v" FLOWSCOPE_VERSION;
inline constexpr absl::string_view kClientVersion = "flowscope v" FLOWSCOPE_VERSION;
inline constexpr absl::string_view kRelayVersion = "flowscope-relay v" FLOWSCOPE_VERSION;

// "flowscope v0.1.0@main-4fd9198 compiled with gcc 12.2.0 on linux/amd64": what
// `flowscope version` prints, in the shape of `hubble version`.
std::string BuildInfo(absl::string_view program);

// The version a server names in its response headers ("hubble-server-version" from an
// observer, "hubble-relay-version" from a relay, as Hubble's servers send them).
inline constexpr char kServerVersionHeader[] = "hubble-server-version";
inline constexpr char kRelayVersionHeader[] = "hubble-relay-version";

// True when `client`'s major.minor is below `server`'s (a tolerant semver: "v1.2.3-rc1",
// "1.2"); false when either does not parse.
bool VersionIsLower(absl::string_view client, absl::string_view server);

}  // namespace flowscope

#endif  // FLOWSCOPE_API_VERSION_H_
