// CPU model of the Ascend C API: the machine state behind the API.
//
// One AI core runs at a time (the runner loops over block indices), so the model keeps one
// context: the core's Unified Buffer (UB), the GM buffers the runner registered, the pipeline
// hazards still open, and the traffic counters. Everything the hardware would silently get wrong
// (or hang on) is a ModelError with a message that names the instruction and the buffer.
//
// Hazards are tracked per UB buffer (a TBuf, or one buffer of a TQue) and cleared the way the
// hardware's synchronisation clears them: SetFlag/WaitFlag<HardEvent::X_Y> fences pipe X before
// pipe Y for every buffer, PipeBarrier<PIPE_V>() orders dependent vector instructions, and a
// queue's EnQue/DeQue pair stands for the flag the framework inserts for its buffer.
#ifndef RMSFUSE_MODEL_CORE_H
#define RMSFUSE_MODEL_CORE_H

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace rmsfuse_model {

class ModelError : public std::runtime_error {
 public:
  explicit ModelError(const std::string& m) : std::runtime_error(m) {}
};

[[noreturn]] inline void Fail(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  throw ModelError(buf);
}

constexpr uint32_t kBlockBytes = 32;  // UB data block; DataCopy and vector operands align to it

// A buffer in global memory (a kernel argument), registered by the runner.
struct GmBuffer {
  std::string name;
  uint8_t* base = nullptr;
  uint64_t size = 0;
  bool output = false;
  // Per byte of an output: 0 = never written, else (writer block + 1) << 20 | fence epoch (mod 2^20).
  std::vector<uint32_t> stamp;
  uint64_t bytesRead = 0;
  uint64_t bytesWritten = 0;
  uint64_t bytesRewritten = 0;  // written again by the same block
};

// One UB allocation: a TBuf or one buffer of a TQue.
struct UbBuffer {
  std::string name;
  uint32_t offset = 0;
  uint32_t size = 0;
  // Open hazards: "written by pipe X, not yet fenced for consumer pipe Y".
  bool vRaw = false;      // vector wrote it; a dependent vector instruction needs PipeBarrier<PIPE_V>
  bool vToS = false, vToMte3 = false;
  bool sToV = false, sToMte3 = false;
  bool mte2ToV = false, mte2ToS = false;
  bool mte3ToV = false, mte3ToS = false;  // MTE3 still reads it: writers must wait
};

struct Stats {
  uint64_t vectorInstructions = 0;
  uint64_t pipeBarriers = 0;
  uint64_t flagWaits = 0;
  uint64_t dmaInstructions = 0;
  uint32_t ubPeak = 0;
};

struct Context {
  // Fixed for a launch.
  uint32_t ubBytes = 192 * 1024;
  uint32_t blockNum = 1;
  std::vector<std::unique_ptr<GmBuffer>> gm;
  Stats stats;
  // Per block.
  uint32_t blockIdx = 0;
  uint32_t ubUsed = 0;
  bool pipeAlive = false;
  std::vector<uint8_t> ub;
  std::vector<std::unique_ptr<UbBuffer>> ubBuffers;
  uint32_t epoch = 1;                 // bumped by every MTE3 -> MTE2 fence
  int flags[32][8] = {};              // outstanding SetFlag per (event, id)
  bool deqScaleSet = false;
  double deqScale = 1.0;
  std::vector<std::string> openQueues;  // queues with buffers still allocated, checked at block end
  int ubObjects = 0;                    // TQue/TBuf count, for names in messages
};

inline Context& Ctx() {
  static Context c;
  return c;
}

// UB bytes a fresh allocation is filled with: all-ones is NaN in every float format and -1 in
// every integer format, so a kernel that computes on bytes it never loaded gets visibly wrong
// results instead of lucky zeros.
constexpr uint8_t kPoison = 0xFF;

inline void BeginLaunch(uint32_t ubBytes, uint32_t blockNum) {
  Context& c = Ctx();
  c.ubBytes = ubBytes;
  c.blockNum = blockNum;
  c.stats = Stats{};
  c.epoch = 1;
}

inline void BeginBlock(uint32_t idx) {
  Context& c = Ctx();
  c.blockIdx = idx;
  c.ubUsed = 0;
  c.pipeAlive = false;
  c.ub.assign(c.ubBytes, kPoison);
  c.ubBuffers.clear();
  for (auto& row : c.flags)
    for (int& f : row) f = 0;
  c.deqScaleSet = false;
  c.openQueues.clear();
  c.ubObjects = 0;
}

inline GmBuffer* RegisterGm(const std::string& name, uint8_t* base, uint64_t size, bool output) {
  auto b = std::make_unique<GmBuffer>();
  b->name = name;
  b->base = base;
  b->size = size;
  b->output = output;
  if (output) b->stamp.assign(size, 0);
  Ctx().gm.push_back(std::move(b));
  return Ctx().gm.back().get();
}

inline void ClearGm() { Ctx().gm.clear(); }

// The registered buffer that holds [p, p + bytes), or a ModelError.
inline GmBuffer* FindGm(const void* p, uint64_t bytes, const char* what) {
  const uint8_t* q = static_cast<const uint8_t*>(p);
  if (q == nullptr) Fail("%s: null GM address (an absent input the kernel uses?)", what);
  for (auto& b : Ctx().gm) {
    if (q >= b->base && q + bytes <= b->base + b->size) return b.get();
  }
  for (auto& b : Ctx().gm) {
    if (q >= b->base && q < b->base + b->size) {
      Fail("%s: window of %llu bytes at offset %llu of GM buffer '%s' runs past its end (%llu bytes)", what,
           static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(q - b->base), b->name.c_str(),
           static_cast<unsigned long long>(b->size));
    }
  }
  Fail("%s: address is in no GM buffer the kernel was given", what);
}

inline void GmRead(GmBuffer* b, uint64_t off, uint64_t bytes, const char* what) {
  if (b->output) {
    const uint32_t cur = Ctx().epoch & 0xFFFFF;
    for (uint64_t i = off; i < off + bytes; ++i) {
      const uint32_t s = b->stamp[i];
      if (s == 0) Fail("%s: reads byte %llu of output '%s', which nothing has written", what, static_cast<unsigned long long>(i), b->name.c_str());
      if ((s & 0xFFFFF) == cur)
        Fail("%s: reads byte %llu of '%s' written by MTE3 with no SetFlag/WaitFlag<HardEvent::MTE3_MTE2> in between",
             what, static_cast<unsigned long long>(i), b->name.c_str());
    }
  }
  b->bytesRead += bytes;
}

inline void GmWrite(GmBuffer* b, uint64_t off, uint64_t bytes, const char* what) {
  if (!b->output) Fail("%s: writes input buffer '%s'", what, b->name.c_str());
  Context& c = Ctx();
  const uint32_t stamp = ((c.blockIdx + 1) << 20) | (c.epoch & 0xFFFFF);
  for (uint64_t i = off; i < off + bytes; ++i) {
    const uint32_t s = b->stamp[i];
    if (s != 0) {
      const uint32_t writer = (s >> 20) - 1;
      if (writer != c.blockIdx)
        Fail("%s: byte %llu of '%s' is written by block %u and block %u (a race between cores)", what,
             static_cast<unsigned long long>(i), b->name.c_str(), writer, c.blockIdx);
      ++b->bytesRewritten;
    }
    b->stamp[i] = stamp;
  }
  b->bytesWritten += bytes;
}

// Bytes of an output buffer no block wrote; -1 when it is fully written.
inline int64_t FirstUnwritten(const GmBuffer& b) {
  for (uint64_t i = 0; i < b.size; ++i)
    if (b.stamp[i] == 0) return static_cast<int64_t>(i);
  return -1;
}

inline UbBuffer* AllocUb(const std::string& name, uint32_t bytes) {
  Context& c = Ctx();
  if (!c.pipeAlive) Fail("InitBuffer(%s): no live TPipe", name.c_str());
  if (bytes == 0) Fail("InitBuffer(%s): zero-length buffer", name.c_str());
  const uint32_t aligned = (bytes + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
  if (static_cast<uint64_t>(c.ubUsed) + aligned > c.ubBytes)
    Fail("UB overflow: InitBuffer(%s) needs %u bytes, %u of %u already used", name.c_str(), aligned, c.ubUsed, c.ubBytes);
  auto b = std::make_unique<UbBuffer>();
  b->name = name;
  b->offset = c.ubUsed;
  b->size = aligned;
  c.ubUsed += aligned;
  if (c.ubUsed > c.stats.ubPeak) c.stats.ubPeak = c.ubUsed;
  c.ubBuffers.push_back(std::move(b));
  return c.ubBuffers.back().get();
}

// --- hazards ---------------------------------------------------------------------------------

inline void VecRead(const UbBuffer* b, const char* op) {
  if (b->vRaw)
    Fail("%s reads UB buffer '%s' written by an earlier vector instruction with no PipeBarrier<PIPE_V>() in between", op,
         b->name.c_str());
  if (b->sToV) Fail("%s reads UB buffer '%s' written by the scalar unit with no SetFlag/WaitFlag<HardEvent::S_V>", op, b->name.c_str());
  if (b->mte2ToV)
    Fail("%s reads UB buffer '%s' loaded by DataCopy (MTE2) with no DeQue or SetFlag/WaitFlag<HardEvent::MTE2_V>", op,
         b->name.c_str());
}

inline void VecWriteCheck(const UbBuffer* b, const char* op) {
  if (b->mte3ToV)
    Fail("%s overwrites UB buffer '%s' that DataCopy (MTE3) may still be reading: SetFlag/WaitFlag<HardEvent::MTE3_V> missing",
         op, b->name.c_str());
  if (b->sToV) Fail("%s overwrites UB buffer '%s' written by the scalar unit with no SetFlag/WaitFlag<HardEvent::S_V>", op, b->name.c_str());
}

inline void VecWrote(UbBuffer* b) {
  b->vRaw = true;
  b->vToS = true;
  b->vToMte3 = true;
}

inline void ScalarRead(const UbBuffer* b) {
  if (b->vToS) Fail("GetValue on UB buffer '%s' written by a vector instruction with no SetFlag/WaitFlag<HardEvent::V_S>", b->name.c_str());
  if (b->mte2ToS) Fail("GetValue on UB buffer '%s' loaded by DataCopy with no SetFlag/WaitFlag<HardEvent::MTE2_S>", b->name.c_str());
}

inline void ScalarWrite(UbBuffer* b) {
  if (b->mte3ToS)
    Fail("SetValue on UB buffer '%s' that DataCopy (MTE3) may still be reading: SetFlag/WaitFlag<HardEvent::MTE3_S> missing",
         b->name.c_str());
  if (b->vToS) Fail("SetValue on UB buffer '%s' written by a vector instruction with no SetFlag/WaitFlag<HardEvent::V_S>", b->name.c_str());
  b->sToV = true;
  b->sToMte3 = true;
}

inline void Mte2Wrote(UbBuffer* b) {
  b->mte2ToV = true;
  b->mte2ToS = true;
}

inline void Mte3Read(UbBuffer* b, const char* op) {
  if (b->vToMte3)
    Fail("%s copies out UB buffer '%s' written by a vector instruction with no EnQue/DeQue or SetFlag/WaitFlag<HardEvent::V_MTE3>",
         op, b->name.c_str());
  if (b->sToMte3)
    Fail("%s copies out UB buffer '%s' written by the scalar unit with no SetFlag/WaitFlag<HardEvent::S_MTE3>", op, b->name.c_str());
  b->mte3ToV = true;
  b->mte3ToS = true;
}

template <typename F>
inline void ForAllUb(F f) {
  for (auto& b : Ctx().ubBuffers) f(*b);
}

}  // namespace rmsfuse_model

#endif  // RMSFUSE_MODEL_CORE_H
