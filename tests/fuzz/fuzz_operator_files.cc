// libFuzzer: what operators write — the deny policy and the endpoints file (YAML or JSON), the
// CLI's config file (YAML), the observer's TOML config (CLI11) and the relay's peers file. A
// malformed document is an error status naming the problem, never an exception.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "cmd/cli/config.h"
#include "observer/endpoint_source.h"
#include "observer/policy.h"
#include "relay/peer_pool.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  flowscope::observer::ParsePolicy(text).IgnoreError();
  flowscope::observer::ParseEndpointList(text).IgnoreError();
  flowscope::relay::ParsePeerList(text);

  // The CLI's config file, through the function that reads it.
  static const std::string path = "/tmp/flowscope-fuzz-config-" + std::to_string(getpid());
  std::ofstream(path, std::ios::trunc | std::ios::binary) << text;
  flowscope::cli::LoadConfig(path, true).status().IgnoreError();

  // The observer's --config: CLI11's TOML/INI reader with options of each kind it has.
  CLI::App app;
  std::string name;
  uint64_t capacity = 0;
  std::vector<std::string> cas;
  bool flag = false;
  app.set_config("--config");
  app.add_option("--node-name", name);
  app.add_option("--ring-capacity", capacity);
  app.add_option("--tls-client-ca-files", cas)->delimiter(',');
  app.add_flag("--version", flag);
  std::istringstream in(text);
  try {
    app.parse_from_stream(in);
  } catch (const CLI::Error&) {
    // A bad config is CLI11's error, which the observer prints and exits on.
  }
  return 0;
}
