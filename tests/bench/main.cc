// flowscope-bench: runs the PERFORMANCE.md figures, prints one table, and writes the same results
// as JSON lines to the file named by --json.
//
//   scripts/bench                      # builds in Release, then runs all figures
//   flowscope-bench --json out.jsonl --runs 5 --only B2,B4
#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "api/memory.h"
#include "tests/bench/figures.h"

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, so every absl::Mutex (gRPC's too) would keep a lock
  // graph for deadlock detection: a cost on every lock and unlock, for a debugging aid.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  flowscope::TuneAllocatorForStreams();
  CLI::App app{"flowscope-bench: measure flowscope against in-run baselines"};
  std::string json_path;
  std::string only;
  bool list = false;
  flowscope::bench::Options options;
  app.add_option("--json", json_path, "write one JSON line per figure to this file");
  app.add_option("--runs", options.runs, "repetitions per measurement (medians are reported)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--only", only, "comma-separated figure ids to run, e.g. B2,B4");
  app.add_flag("--list", list, "list the figures and exit");
  CLI11_PARSE(app, argc, argv);

  const std::vector<flowscope::bench::Figure> figures = flowscope::bench::AllFigures();
  std::set<std::string> wanted;
  for (auto id : absl::StrSplit(only, ',', absl::SkipEmpty())) wanted.emplace(id);
  for (const std::string& id : wanted) {
    bool known = false;
    for (const auto& f : figures) known = known || f.id == id;
    if (!known) {
      std::cerr << "flowscope-bench: unknown figure id \"" << id << "\" (see --list)\n";
      return 2;
    }
  }
  if (list) {
    for (const auto& f : figures) std::cout << f.id << "  " << f.title << "\n";
    return 0;
  }

  std::ofstream json;
  if (!json_path.empty()) {
    json.open(json_path, std::ios::trunc);
    if (!json) {
      std::cerr << "flowscope-bench: cannot write " << json_path << "\n";
      return 2;
    }
  }
  std::vector<flowscope::bench::FigureResult> results;
  for (const auto& f : figures) {
    if (!wanted.empty() && !wanted.count(f.id)) continue;
    std::cerr << "flowscope-bench: " << f.id << " " << f.title << " ...\n";
    for (auto& r : f.run(options)) {
      if (json.is_open()) json << flowscope::bench::FormatJsonLine(r) << "\n" << std::flush;
      results.push_back(std::move(r));
    }
  }
  std::cout << flowscope::bench::FormatTable(results);
  return 0;
}
