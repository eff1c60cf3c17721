// Describes one kernel variant (an `algo=` choice) so that Python can list them.
#pragma once

#include <string>
#include <vector>

namespace convforge::cpu {

struct KernelInfo {
  std::string name;         // the algo= string
  std::string kind;         // "reference" (plain loops, read first), "teaching" or "production"
  std::string description;  // one line: what this version changes
  std::string source;       // file it lives in, relative to csrc/
  std::string when = "";    // where it applies (elsewhere it hands over to another algo)
};

}  // namespace convforge::cpu
