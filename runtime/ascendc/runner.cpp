// Runs kernels compiled against the CPU model of the Ascend C API.
//
// Usage: runner JOBFILE. The job file lists launches, each as lines
//   job KERNEL_NAME
//   ub BYTES            the platform's UB per core
//   blockdim N          cores to launch (block indices 0..N-1, run one after the other)
//   tiling PATH         bytes of the tiling struct
//   arg NAME in PATH    a GM input read from PATH
//   arg NAME out PATH BYTES   a GM output of BYTES, written to PATH after the launch
//   arg NAME null       an absent optional argument (nullptr)
//   run
// in any order: the runner puts them in the entry's order by name (workspace and tiling are
// appended). For every job it prints
// one JSON line on stdout: {"ok":true, "gm":[...bytes read/written per buffer...], ...} or
// {"ok":false,"error":"..."}. Exit status 0 iff every job passed.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "kernel_operator.h"

struct KernelEntry {
  const char* name;
  int argc;                   // including workspace and tiling
  const char* const* params;  // GM argument names in entry order, null-terminated
  void (*call)(GM_ADDR*);
};
extern const KernelEntry kRmsfuseKernels[];
extern const int kRmsfuseKernelCount;

namespace {

struct Arg {
  std::string name;
  std::string kind;  // in, out, null
  std::string path;
  uint64_t bytes = 0;
  std::vector<uint8_t> data;
};

struct Job {
  std::string kernel;
  uint32_t ub = 0;
  uint32_t blockDim = 0;
  std::string tilingPath;
  std::vector<Arg> args;
};

std::string JsonEscape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (c == '\n') o += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20) o += ' ';
    else o += c;
  }
  return o;
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw rmsfuse_model::ModelError("cannot read " + path);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::vector<uint8_t>& d) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(d.data()), static_cast<std::streamsize>(d.size()));
  if (!f) throw rmsfuse_model::ModelError("cannot write " + path);
}

const KernelEntry* FindKernel(const std::string& name) {
  for (int i = 0; i < kRmsfuseKernelCount; ++i)
    if (name == kRmsfuseKernels[i].name) return &kRmsfuseKernels[i];
  return nullptr;
}

std::string Run(Job& job) {
  namespace rm = rmsfuse_model;
  const KernelEntry* k = FindKernel(job.kernel);
  if (!k) throw rm::ModelError("no kernel named " + job.kernel + " in this binary");
  if (static_cast<int>(job.args.size()) + 2 != k->argc)
    throw rm::ModelError(job.kernel + " takes " + std::to_string(k->argc - 2) + " GM arguments, the job gives " +
                         std::to_string(job.args.size()));
  if (job.blockDim == 0) throw rm::ModelError("blockdim 0");
  std::vector<uint8_t> tiling = ReadFile(job.tilingPath);
  rm::ClearGm();
  // Arguments in the entry's order.
  std::vector<Arg*> ordered;
  for (int i = 0; i + 2 < k->argc; ++i) {
    Arg* found = nullptr;
    for (Arg& a : job.args)
      if (a.name == k->params[i]) found = &a;
    if (!found) throw rm::ModelError(job.kernel + ": the job gives no argument '" + k->params[i] + "'");
    ordered.push_back(found);
  }
  std::vector<GM_ADDR> argv;
  std::vector<rm::GmBuffer*> bufs;
  for (Arg* a : ordered) {
    if (a->kind == "null") {
      argv.push_back(nullptr);
      bufs.push_back(nullptr);
      continue;
    }
    if (a->kind == "in") a->data = ReadFile(a->path);
    else a->data.assign(a->bytes, rm::kPoison);
    // An empty tensor still gets a distinct address.
    if (a->data.empty()) a->data.reserve(1);
    bufs.push_back(rm::RegisterGm(a->name, a->data.data(), a->data.size(), a->kind == "out"));
    argv.push_back(a->data.data());
  }
  argv.push_back(nullptr);  // workspace: these kernels need none
  argv.push_back(tiling.data());

  rm::BeginLaunch(job.ub, job.blockDim);
  for (uint32_t b = 0; b < job.blockDim; ++b) {
    rm::BeginBlock(b);
    try {
      k->call(argv.data());
    } catch (rm::ModelError& e) {
      throw rm::ModelError("block " + std::to_string(b) + ": " + e.what());
    }
    rm::Context& c = rm::Ctx();
    for (const std::string& q : c.openQueues) throw rm::ModelError("block " + std::to_string(b) + ": " + q);
    for (int e = 0; e < 32; ++e)
      for (int id = 0; id < 8; ++id)
        if (c.flags[e][id])
          throw rm::ModelError("block " + std::to_string(b) + ": a SetFlag (event " + std::to_string(e) + ", id " + std::to_string(id) +
                               ") is never waited for");
  }
  std::ostringstream gm;
  for (size_t i = 0; i < ordered.size(); ++i) {
    Arg& a = *ordered[i];
    rm::GmBuffer* b = bufs[i];
    if (!b) continue;
    if (b->output) {
      int64_t first = rm::FirstUnwritten(*b);
      if (first >= 0) throw rm::ModelError("output '" + a.name + "': byte " + std::to_string(first) + " of " + std::to_string(b->size) + " never written");
      WriteFile(a.path, a.data);
    }
    gm << (gm.tellp() > 0 ? "," : "") << "{\"name\":\"" << JsonEscape(a.name) << "\",\"read\":" << b->bytesRead
       << ",\"written\":" << b->bytesWritten << ",\"rewritten\":" << b->bytesRewritten << "}";
  }
  const rm::Stats& s = rm::Ctx().stats;
  std::ostringstream out;
  out << "{\"ok\":true,\"kernel\":\"" << JsonEscape(job.kernel) << "\",\"gm\":[" << gm.str() << "],\"ubPeak\":" << s.ubPeak
      << ",\"vectorInstructions\":" << s.vectorInstructions << ",\"pipeBarriers\":" << s.pipeBarriers
      << ",\"flagWaits\":" << s.flagWaits << ",\"dmaInstructions\":" << s.dmaInstructions << "}";
  return out.str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s JOBFILE\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", argv[1]);
    return 2;
  }
  bool allOk = true;
  Job job;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string word;
    if (!(ls >> word)) continue;
    if (word == "job") {
      job = Job{};
      ls >> job.kernel;
    } else if (word == "ub") {
      ls >> job.ub;
    } else if (word == "blockdim") {
      ls >> job.blockDim;
    } else if (word == "tiling") {
      ls >> job.tilingPath;
    } else if (word == "arg") {
      Arg a;
      ls >> a.name >> a.kind;
      if (a.kind != "null") ls >> a.path;
      if (a.kind == "out") ls >> a.bytes;
      job.args.push_back(a);
    } else if (word == "run") {
      std::string result;
      try {
        result = Run(job);
      } catch (std::exception& e) {
        allOk = false;
        result = "{\"ok\":false,\"kernel\":\"" + JsonEscape(job.kernel) + "\",\"error\":\"" + JsonEscape(e.what()) + "\"}";
      }
      std::cout << result << std::endl;
    } else {
      std::fprintf(stderr, "unknown job line: %s\n", line.c_str());
      return 2;
    }
  }
  return allOk ? 0 : 1;
}
