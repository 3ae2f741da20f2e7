// CPU model of the Ascend C API subset rmsfuse's kernels use (host-compiled with g++).
//
// The signatures follow the vendor's public documentation (basic APIs: GlobalTensor,
// LocalTensor, TPipe, TQue, TBuf, DataCopy, DataCopyPad, vector arithmetic, Cast, reductions,
// SetFlag/WaitFlag, PipeBarrier), so a kernel that compiles here is written against the real
// API. The model is stricter than a simulator that only computes values: every rule the
// hardware relies on the programmer for is checked, and a violation throws
// rmsfuse_model::ModelError (the runner prints it and exits non-zero):
//   - DataCopy moves a multiple of 32 bytes; UB addresses of DMA and vector operands are 32-byte aligned;
//   - UB allocations never exceed the platform's UB (set per launch by the runner);
//   - queues: no DeQue from an empty queue, no AllocTensor beyond the buffers, no double free,
//     nothing left allocated at the end;
//   - GM accesses stay inside the window given to SetGlobalBuffer, and windows inside the
//     buffers the kernel received; outputs are written by one core only, and completely;
//   - pipeline hazards need their synchronisation (see rmsfuse_model/core.h).
// It counts the GM bytes every buffer reads and writes: the figure of merit of a memory-bound kernel.
#ifndef RMSFUSE_KERNEL_OPERATOR_H
#define RMSFUSE_KERNEL_OPERATOR_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <string>
#include <type_traits>
#include <vector>

#include "rmsfuse_model/core.h"
#include "rmsfuse_model/numeric.h"

#define ASCENDC_CPU_MODEL 1
#define __aicore__
#define __global__
#define __gm__
typedef uint8_t* GM_ADDR;

// The vendor declares these pipe names outside the AscendC namespace.
enum pipe_t { PIPE_S = 0, PIPE_V, PIPE_M, PIPE_MTE1, PIPE_MTE2, PIPE_MTE3, PIPE_ALL, PIPE_FIX };
enum event_t { EVENT_ID0 = 0, EVENT_ID1, EVENT_ID2, EVENT_ID3, EVENT_ID4, EVENT_ID5, EVENT_ID6, EVENT_ID7 };

namespace AscendC {

using rmsfuse_model::Fail;
namespace rm = rmsfuse_model;

constexpr int32_t ONE_BLK_SIZE = 32;
constexpr int32_t ONE_REPEAT_BYTE_SIZE = 256;

enum class TPosition : uint8_t { GM, A1, A2, B1, B2, C1, C2, CO1, CO2, VECIN, VECOUT, VECCALC, LCM = VECCALC, SPM, SHM, TSCM, MAX };
using QuePosition = TPosition;

enum class HardEvent : uint8_t {
  MTE2_MTE1, MTE1_MTE2, MTE1_M, M_MTE1, MTE2_V, V_MTE2, MTE3_V, V_MTE3, M_V, V_M, V_V, MTE3_MTE1, MTE1_MTE3,
  MTE1_V, MTE2_M, M_MTE2, V_MTE1, M_FIX, FIX_M, MTE3_MTE2, MTE2_MTE3, S_V, V_S, S_MTE2, MTE2_S, S_MTE3, MTE3_S,
  MTE2_FIX, FIX_MTE2, FIX_S, M_S, FIX_MTE3, MAX
};
using TEventID = int8_t;

inline const char* EventName(HardEvent e) {
  switch (e) {
    case HardEvent::MTE2_V: return "MTE2_V";
    case HardEvent::V_MTE2: return "V_MTE2";
    case HardEvent::MTE3_V: return "MTE3_V";
    case HardEvent::V_MTE3: return "V_MTE3";
    case HardEvent::MTE3_MTE2: return "MTE3_MTE2";
    case HardEvent::MTE2_MTE3: return "MTE2_MTE3";
    case HardEvent::S_V: return "S_V";
    case HardEvent::V_S: return "V_S";
    case HardEvent::S_MTE2: return "S_MTE2";
    case HardEvent::MTE2_S: return "MTE2_S";
    case HardEvent::S_MTE3: return "S_MTE3";
    case HardEvent::MTE3_S: return "MTE3_S";
    default: return "other";
  }
}

inline int64_t GetBlockIdx() { return rm::Ctx().blockIdx; }
inline int64_t GetBlockNum() { return rm::Ctx().blockNum; }

// ---------------------------------------------------------------------------------------------
// Tensors

template <typename T>
class LocalTensor {
 public:
  LocalTensor() = default;
  uint32_t GetSize() const { return bytes_ / sizeof(T); }
  uint64_t GetPhyAddr() const { return buf_ ? buf_->offset + off_ : 0; }
  LocalTensor operator[](uint32_t offset) const {
    if (!buf_) Fail("LocalTensor[]: empty tensor");
    if (static_cast<uint64_t>(offset) * sizeof(T) > bytes_)
      Fail("LocalTensor[%u]: beyond the %u elements of UB buffer '%s'", offset, GetSize(), buf_->name.c_str());
    LocalTensor t = *this;
    t.off_ = off_ + offset * sizeof(T);
    t.bytes_ = bytes_ - offset * sizeof(T);
    return t;
  }
  T GetValue(uint32_t i) const {
    CheckIndex(i, "GetValue");
    rm::ScalarRead(buf_);
    T v;
    std::memcpy(&v, Bytes() + i * sizeof(T), sizeof(T));
    return v;
  }
  void SetValue(uint32_t i, const T& v) const {
    CheckIndex(i, "SetValue");
    rm::ScalarWrite(buf_);
    std::memcpy(Bytes() + i * sizeof(T), &v, sizeof(T));
  }
  template <typename U>
  LocalTensor<U> ReinterpretCast() const {
    LocalTensor<U> t;
    t.buf_ = buf_;
    t.off_ = off_;
    t.bytes_ = bytes_;
    return t;
  }

  // Model internals (public so the free functions below can reach them).
  rm::UbBuffer* buf_ = nullptr;
  uint32_t off_ = 0;    // bytes from the start of buf_
  uint32_t bytes_ = 0;  // bytes visible through this view
  uint8_t* Bytes() const { return rm::Ctx().ub.data() + buf_->offset + off_; }
  T* Data() const { return reinterpret_cast<T*>(Bytes()); }

 private:
  void CheckIndex(uint32_t i, const char* op) const {
    if (!buf_) Fail("%s on an empty LocalTensor", op);
    if (i >= GetSize()) Fail("%s(%u): beyond the %u elements of UB buffer '%s'", op, i, GetSize(), buf_->name.c_str());
  }
};

template <typename T>
class GlobalTensor {
 public:
  GlobalTensor() = default;
  void SetGlobalBuffer(__gm__ T* buffer, uint64_t bufferSize) {
    gm_ = rm::FindGm(buffer, bufferSize * sizeof(T), "SetGlobalBuffer");
    ptr_ = buffer;
    size_ = bufferSize;
  }
  void SetGlobalBuffer(__gm__ T* buffer) {
    rm::GmBuffer* b = rm::FindGm(buffer, sizeof(T), "SetGlobalBuffer");
    SetGlobalBuffer(buffer, (b->base + b->size - reinterpret_cast<uint8_t*>(buffer)) / sizeof(T));
  }
  uint64_t GetSize() const { return size_; }
  const __gm__ T* GetPhyAddr() const { return ptr_; }
  GlobalTensor operator[](uint64_t offset) const {
    Check();
    if (offset > size_)
      Fail("GlobalTensor[%llu]: outside its window of %llu elements in '%s'", static_cast<unsigned long long>(offset),
           static_cast<unsigned long long>(size_), gm_->name.c_str());
    GlobalTensor t = *this;
    t.ptr_ = ptr_ + offset;
    t.size_ = size_ - offset;
    return t;
  }
  T GetValue(uint64_t i) const {
    CheckRange(i, 1, "GetValue");
    rm::GmRead(gm_, ByteOff() + i * sizeof(T), sizeof(T), "GlobalTensor::GetValue");
    return ptr_[i];
  }
  void SetValue(uint64_t i, const T& v) {
    CheckRange(i, 1, "SetValue");
    rm::GmWrite(gm_, ByteOff() + i * sizeof(T), sizeof(T), "GlobalTensor::SetValue");
    ptr_[i] = v;
  }

  // Model internals.
  T* ptr_ = nullptr;
  uint64_t size_ = 0;
  rm::GmBuffer* gm_ = nullptr;
  uint64_t ByteOff() const { return reinterpret_cast<uint8_t*>(ptr_) - gm_->base; }
  void Check() const {
    if (!gm_) Fail("GlobalTensor used before SetGlobalBuffer");
  }
  void CheckRange(uint64_t first, uint64_t count, const char* op) const {
    Check();
    if (first + count > size_)
      Fail("%s: elements [%llu, %llu) lie outside the window of %llu elements SetGlobalBuffer gave '%s'", op,
           static_cast<unsigned long long>(first), static_cast<unsigned long long>(first + count),
           static_cast<unsigned long long>(size_), gm_->name.c_str());
  }
};

// ---------------------------------------------------------------------------------------------
// Memory management: TPipe, TQue, TBuf

class TPipe;
inline TPipe*& CurrentPipe() {
  static TPipe* p = nullptr;
  return p;
}

template <TPosition pos, int32_t depth>
class TQue {
 public:
  TQue() = default;
  TQue(const TQue&) = delete;
  ~TQue() {
    int held = 0;
    for (auto& s : slots_) held += s.state != kFree;
    if (held) rm::Ctx().openQueues.push_back(name_ + ": " + std::to_string(held) + " buffer(s) never freed");
  }
  void InitModel(uint8_t num, uint32_t len) {
    if (!slots_.empty()) Fail("InitBuffer: %s initialised twice", name_.c_str());
    if (num == 0) Fail("InitBuffer: zero buffers for a queue");
    name_ = std::string(pos == TPosition::VECIN ? "TQue<VECIN>" : pos == TPosition::VECOUT ? "TQue<VECOUT>" : "TQue") + "#" +
            std::to_string(++rm::Ctx().ubObjects);
    for (uint8_t i = 0; i < num; ++i) slots_.push_back({rm::AllocUb(name_ + "[" + std::to_string(i) + "]", len), kFree});
  }
  template <typename T>
  LocalTensor<T> AllocTensor() {
    if (slots_.empty()) Fail("AllocTensor on a queue with no InitBuffer");
    for (auto& s : slots_) {
      if (s.state != kFree) continue;
      s.state = kAllocated;
      // The framework waits for the previous copy-out of this buffer before handing it back.
      if (pos == TPosition::VECOUT) s.buf->mte3ToV = s.buf->mte3ToS = false;
      return Tensor<T>(s.buf);
    }
    Fail("AllocTensor: all %zu buffers of %s are in use (a FreeTensor missing?)", slots_.size(), name_.c_str());
  }
  template <typename T>
  bool EnQue(const LocalTensor<T>& t) {
    Slot& s = Find(t, "EnQue");
    if (s.state != kAllocated) Fail("EnQue on %s: the tensor is not freshly allocated (state %d)", name_.c_str(), s.state);
    s.state = kEnqueued;
    fifo_.push_back(&s);
    if (static_cast<int32_t>(fifo_.size()) > depth) Fail("EnQue on %s: more than depth %d tensors queued", name_.c_str(), depth);
    return true;
  }
  template <typename T>
  LocalTensor<T> DeQue() {
    if (fifo_.empty()) Fail("DeQue on empty %s: nothing was enqueued (the core would wait forever)", name_.c_str());
    Slot* s = fifo_.front();
    fifo_.pop_front();
    s->state = kDequeued;
    // DeQue waits for the producer pipe: MTE2 for VECIN, the vector/scalar units for VECOUT.
    if (pos == TPosition::VECIN) s->buf->mte2ToV = s->buf->mte2ToS = false;
    if (pos == TPosition::VECOUT) s->buf->vToMte3 = s->buf->sToMte3 = false;
    return Tensor<T>(s->buf);
  }
  template <typename T>
  void FreeTensor(LocalTensor<T>& t) {
    Slot& s = Find(t, "FreeTensor");
    if (s.state == kFree) Fail("FreeTensor on %s: double free", name_.c_str());
    if (s.state == kEnqueued) Fail("FreeTensor on %s: the tensor is still enqueued", name_.c_str());
    s.state = kFree;
  }

 private:
  enum { kFree = 0, kAllocated = 1, kEnqueued = 2, kDequeued = 3 };
  struct Slot {
    rm::UbBuffer* buf;
    int state;
  };
  std::vector<Slot> slots_;
  std::deque<Slot*> fifo_;
  std::string name_ = "TQue";

  template <typename T>
  static LocalTensor<T> Tensor(rm::UbBuffer* b) {
    LocalTensor<T> t;
    t.buf_ = b;
    t.off_ = 0;
    t.bytes_ = b->size;
    return t;
  }
  template <typename T>
  Slot& Find(const LocalTensor<T>& t, const char* op) {
    for (auto& s : slots_)
      if (s.buf == t.buf_) {
        if (t.off_ != 0) Fail("%s on %s: pass the tensor AllocTensor returned, not a view at an offset", op, name_.c_str());
        return s;
      }
    Fail("%s on %s: the tensor does not belong to this queue", op, name_.c_str());
  }
};

template <TPosition pos = TPosition::VECCALC>
class TBuf {
 public:
  void InitModel(uint32_t len) {
    if (buf_) Fail("InitBuffer: a TBuf initialised twice");
    buf_ = rm::AllocUb("TBuf#" + std::to_string(++rm::Ctx().ubObjects), len);
  }
  template <typename T>
  LocalTensor<T> Get() {
    if (!buf_) Fail("TBuf::Get before InitBuffer");
    LocalTensor<T> t;
    t.buf_ = buf_;
    t.bytes_ = buf_->size;
    return t;
  }
  template <typename T>
  LocalTensor<T> Get(uint32_t len) {
    LocalTensor<T> t = Get<T>();
    if (static_cast<uint64_t>(len) * sizeof(T) > buf_->size) Fail("TBuf::Get(%u): more than the buffer's %u bytes", len, buf_->size);
    t.bytes_ = len * sizeof(T);
    return t;
  }

 private:
  rm::UbBuffer* buf_ = nullptr;
};

class TPipe {
 public:
  TPipe() {
    if (rm::Ctx().pipeAlive) Fail("a second TPipe while one is alive");
    rm::Ctx().pipeAlive = true;
    CurrentPipe() = this;
  }
  ~TPipe() {
    rm::Ctx().pipeAlive = false;
    CurrentPipe() = nullptr;
  }
  TPipe(const TPipe&) = delete;
  template <TPosition pos, int32_t depth>
  void InitBuffer(TQue<pos, depth>& que, uint8_t num, uint32_t len) {
    que.InitModel(num, len);
  }
  template <TPosition pos>
  void InitBuffer(TBuf<pos>& buf, uint32_t len) {
    buf.InitModel(len);
  }
  TEventID FetchEventID(HardEvent) { return 0; }
  template <HardEvent evt>
  TEventID FetchEventID() {
    return 0;
  }
  void ReleaseEventID(TEventID) {}
  void Destroy() {}
};

inline TPipe* GetTPipePtr() {
  if (!CurrentPipe()) Fail("GetTPipePtr: no live TPipe");
  return CurrentPipe();
}

// ---------------------------------------------------------------------------------------------
// Synchronisation

template <HardEvent evt>
inline void SetFlag(int32_t eventID) {
  if (eventID < 0 || eventID >= 8) Fail("SetFlag<%s>(%d): event id out of range", EventName(evt), eventID);
  ++rm::Ctx().flags[static_cast<int>(evt)][eventID];
}

template <HardEvent evt>
inline void WaitFlag(int32_t eventID) {
  if (eventID < 0 || eventID >= 8) Fail("WaitFlag<%s>(%d): event id out of range", EventName(evt), eventID);
  int& f = rm::Ctx().flags[static_cast<int>(evt)][eventID];
  if (f == 0) Fail("WaitFlag<HardEvent::%s>(%d) with no SetFlag before it: the core would wait forever", EventName(evt), eventID);
  --f;
  ++rm::Ctx().stats.flagWaits;
  rm::ForAllUb([](rm::UbBuffer& b) {
    switch (evt) {
      case HardEvent::V_S: b.vToS = false; break;
      case HardEvent::S_V: b.sToV = false; break;
      case HardEvent::MTE2_V: b.mte2ToV = false; break;
      case HardEvent::MTE2_S: b.mte2ToS = false; break;
      case HardEvent::V_MTE3: b.vToMte3 = false; break;
      case HardEvent::S_MTE3: b.sToMte3 = false; break;
      case HardEvent::MTE3_V: b.mte3ToV = false; break;
      case HardEvent::MTE3_S: b.mte3ToS = false; break;
      default: break;
    }
  });
  if (evt == HardEvent::MTE3_MTE2) ++rm::Ctx().epoch;
}

template <pipe_t pipe>
inline void PipeBarrier() {
  ++rm::Ctx().stats.pipeBarriers;
  if (pipe == PIPE_V) rm::ForAllUb([](rm::UbBuffer& b) { b.vRaw = false; });
  if (pipe == PIPE_ALL) {
    // Everything issued so far has completed: no hazard stays open.
    rm::ForAllUb([](rm::UbBuffer& b) { b = rm::UbBuffer{b.name, b.offset, b.size}; });
    ++rm::Ctx().epoch;
  }
}

// ---------------------------------------------------------------------------------------------
// Data movement

struct DataCopyParams {
  uint16_t blockCount = 1;
  uint16_t blockLen = 0;  // in 32-byte blocks
  uint16_t srcStride = 0;
  uint16_t dstStride = 0;
  DataCopyParams() = default;
  DataCopyParams(uint16_t count, uint16_t len, uint16_t srcStrideIn, uint16_t dstStrideIn)
      : blockCount(count), blockLen(len), srcStride(srcStrideIn), dstStride(dstStrideIn) {}
};

struct DataCopyExtParams {
  uint16_t blockCount = 1;
  uint32_t blockLen = 0;   // bytes
  uint32_t srcStride = 0;  // GM -> UB: bytes between GM blocks; UB -> GM: 32-byte blocks between UB blocks
  uint32_t dstStride = 0;  // GM -> UB: 32-byte blocks between UB blocks; UB -> GM: bytes between GM blocks
  uint32_t rsv = 0;
  DataCopyExtParams() = default;
  DataCopyExtParams(uint16_t count, uint32_t len, uint32_t srcStrideIn, uint32_t dstStrideIn, uint32_t rsvIn)
      : blockCount(count), blockLen(len), srcStride(srcStrideIn), dstStride(dstStrideIn), rsv(rsvIn) {}
};

template <typename T>
struct DataCopyPadExtParams {
  bool isPad = false;
  uint8_t leftPadding = 0;   // elements
  uint8_t rightPadding = 0;  // elements
  T paddingValue = T(0);
  DataCopyPadExtParams() = default;
  DataCopyPadExtParams(bool pad, uint8_t left, uint8_t right, T value)
      : isPad(pad), leftPadding(left), rightPadding(right), paddingValue(value) {}
};

namespace detail {
template <typename T>
inline void CheckLocal(const LocalTensor<T>& t, uint64_t bytes, const char* op, const char* role) {
  if (!t.buf_) Fail("%s: %s is an empty LocalTensor", op, role);
  if (t.GetPhyAddr() % ONE_BLK_SIZE)
    Fail("%s: %s starts at UB byte %llu of '%s', not 32-byte aligned", op, role, static_cast<unsigned long long>(t.GetPhyAddr()),
         t.buf_->name.c_str());
  if (bytes > t.bytes_)
    Fail("%s: %s needs %llu bytes, the UB view of '%s' has %u", op, role, static_cast<unsigned long long>(bytes), t.buf_->name.c_str(),
         t.bytes_);
}

inline uint64_t CeilBlock(uint64_t bytes) { return (bytes + ONE_BLK_SIZE - 1) / ONE_BLK_SIZE * ONE_BLK_SIZE; }
}  // namespace detail

// GM -> UB, count elements: a multiple of 32 bytes.
template <typename T>
inline void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const uint32_t count) {
  const uint64_t bytes = static_cast<uint64_t>(count) * sizeof(T);
  if (count == 0 || bytes % ONE_BLK_SIZE)
    Fail("DataCopy GM->UB of %u %s elements = %llu bytes: not a positive multiple of 32 bytes (use DataCopyPad)", count,
         rm::TypeName<T>::value, static_cast<unsigned long long>(bytes));
  detail::CheckLocal(dst, bytes, "DataCopy GM->UB", "dst");
  src.CheckRange(0, count, "DataCopy GM->UB");
  rm::GmRead(src.gm_, src.ByteOff(), bytes, "DataCopy GM->UB");
  std::memcpy(dst.Bytes(), src.ptr_, bytes);
  rm::Mte2Wrote(dst.buf_);
  ++rm::Ctx().stats.dmaInstructions;
}

// UB -> GM, count elements: a multiple of 32 bytes.
template <typename T>
inline void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const uint32_t count) {
  const uint64_t bytes = static_cast<uint64_t>(count) * sizeof(T);
  if (count == 0 || bytes % ONE_BLK_SIZE)
    Fail("DataCopy UB->GM of %u %s elements = %llu bytes: not a positive multiple of 32 bytes (use DataCopyPad)", count,
         rm::TypeName<T>::value, static_cast<unsigned long long>(bytes));
  detail::CheckLocal(src, bytes, "DataCopy UB->GM", "src");
  dst.CheckRange(0, count, "DataCopy UB->GM");
  rm::Mte3Read(src.buf_, "DataCopy UB->GM");
  rm::GmWrite(dst.gm_, dst.ByteOff(), bytes, "DataCopy UB->GM");
  std::memcpy(dst.ptr_, src.Bytes(), bytes);
  ++rm::Ctx().stats.dmaInstructions;
}

// GM -> UB in blocks of blockLen 32-byte units, strides in 32-byte units on both sides.
template <typename T>
inline void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyParams& p) {
  if (p.blockCount == 0 || p.blockLen == 0) Fail("DataCopy GM->UB: blockCount and blockLen must be positive");
  const uint64_t len = static_cast<uint64_t>(p.blockLen) * ONE_BLK_SIZE;
  const uint64_t ubStride = len + static_cast<uint64_t>(p.dstStride) * ONE_BLK_SIZE;
  const uint64_t gmStride = len + static_cast<uint64_t>(p.srcStride) * ONE_BLK_SIZE;
  detail::CheckLocal(dst, ubStride * (p.blockCount - 1) + len, "DataCopy GM->UB", "dst");
  for (uint32_t i = 0; i < p.blockCount; ++i) {
    src.CheckRange(i * gmStride / sizeof(T), len / sizeof(T), "DataCopy GM->UB");
    rm::GmRead(src.gm_, src.ByteOff() + i * gmStride, len, "DataCopy GM->UB");
    std::memcpy(dst.Bytes() + i * ubStride, reinterpret_cast<const uint8_t*>(src.ptr_) + i * gmStride, len);
  }
  rm::Mte2Wrote(dst.buf_);
  ++rm::Ctx().stats.dmaInstructions;
}

// GM -> UB of blockCount blocks of blockLen bytes (any length). In UB every block starts on a
// 32-byte boundary; the bytes between a block's end and that boundary are padding (paddingValue
// with isPad, else undefined: the model leaves poison there).
template <typename T>
inline void DataCopyPad(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyExtParams& p,
                        const DataCopyPadExtParams<T>& pad) {
  const char* op = "DataCopyPad GM->UB";
  if (p.blockCount == 0 || p.blockCount > 4095) Fail("%s: blockCount %u outside [1, 4095]", op, p.blockCount);
  if (p.blockLen == 0 || p.blockLen % sizeof(T)) Fail("%s: blockLen %u bytes is not a positive multiple of sizeof(%s)", op, p.blockLen, rm::TypeName<T>::value);
  if (pad.leftPadding) Fail("%s: leftPadding is not modelled", op);
  const uint64_t ubBlock = detail::CeilBlock(p.blockLen);
  if (pad.isPad && p.blockLen + pad.rightPadding * sizeof(T) > ubBlock)
    Fail("%s: rightPadding of %u elements runs past the block's 32-byte boundary", op, pad.rightPadding);
  const uint64_t ubStride = ubBlock + static_cast<uint64_t>(p.dstStride) * ONE_BLK_SIZE;
  const uint64_t gmStride = static_cast<uint64_t>(p.blockLen) + p.srcStride;
  detail::CheckLocal(dst, ubStride * (p.blockCount - 1) + ubBlock, op, "dst");
  for (uint32_t i = 0; i < p.blockCount; ++i) {
    if ((i * gmStride) % sizeof(T)) Fail("%s: srcStride %u bytes breaks %s element alignment", op, p.srcStride, rm::TypeName<T>::value);
    src.CheckRange(i * gmStride / sizeof(T), p.blockLen / sizeof(T), op);
    rm::GmRead(src.gm_, src.ByteOff() + i * gmStride, p.blockLen, op);
    uint8_t* d = dst.Bytes() + i * ubStride;
    std::memcpy(d, reinterpret_cast<const uint8_t*>(src.ptr_) + i * gmStride, p.blockLen);
    std::memset(d + p.blockLen, rm::kPoison, ubBlock - p.blockLen);
    if (pad.isPad)
      for (uint32_t k = 0; k < pad.rightPadding; ++k) std::memcpy(d + p.blockLen + k * sizeof(T), &pad.paddingValue, sizeof(T));
  }
  rm::Mte2Wrote(dst.buf_);
  ++rm::Ctx().stats.dmaInstructions;
}

// UB -> GM of blockCount blocks of blockLen bytes; UB blocks start on 32-byte boundaries.
template <typename T>
inline void DataCopyPad(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyExtParams& p) {
  const char* op = "DataCopyPad UB->GM";
  if (p.blockCount == 0 || p.blockCount > 4095) Fail("%s: blockCount %u outside [1, 4095]", op, p.blockCount);
  if (p.blockLen == 0 || p.blockLen % sizeof(T)) Fail("%s: blockLen %u bytes is not a positive multiple of sizeof(%s)", op, p.blockLen, rm::TypeName<T>::value);
  const uint64_t ubBlock = detail::CeilBlock(p.blockLen);
  const uint64_t ubStride = ubBlock + static_cast<uint64_t>(p.srcStride) * ONE_BLK_SIZE;
  const uint64_t gmStride = static_cast<uint64_t>(p.blockLen) + p.dstStride;
  detail::CheckLocal(src, ubStride * (p.blockCount - 1) + p.blockLen, op, "src");
  rm::Mte3Read(src.buf_, op);
  for (uint32_t i = 0; i < p.blockCount; ++i) {
    if ((i * gmStride) % sizeof(T)) Fail("%s: dstStride %u bytes breaks %s element alignment", op, p.dstStride, rm::TypeName<T>::value);
    dst.CheckRange(i * gmStride / sizeof(T), p.blockLen / sizeof(T), op);
    rm::GmWrite(dst.gm_, dst.ByteOff() + i * gmStride, p.blockLen, op);
    std::memcpy(reinterpret_cast<uint8_t*>(dst.ptr_) + i * gmStride, src.Bytes() + i * ubStride, p.blockLen);
  }
  ++rm::Ctx().stats.dmaInstructions;
}

// ---------------------------------------------------------------------------------------------
// Vector instructions ("first count elements" forms)

namespace detail {
template <typename T>
inline void CheckOperand(const LocalTensor<T>& t, int64_t count, const char* op, const char* role) {
  if (!t.buf_) Fail("%s: %s is an empty LocalTensor", op, role);
  if (count <= 0) Fail("%s: count %lld is not positive", op, static_cast<long long>(count));
  if (static_cast<uint64_t>(count) > t.GetSize())
    Fail("%s: %s has %u %s elements in UB buffer '%s', count is %lld", op, role, t.GetSize(), rm::TypeName<T>::value,
         t.buf_->name.c_str(), static_cast<long long>(count));
  if (t.GetPhyAddr() % ONE_BLK_SIZE)
    Fail("%s: %s starts at UB byte %llu, not 32-byte aligned", op, role, static_cast<unsigned long long>(t.GetPhyAddr()));
}

template <typename T>
constexpr bool kArith = std::is_same_v<T, half> || std::is_same_v<T, float> || std::is_same_v<T, int16_t> || std::is_same_v<T, int32_t>;
template <typename T>
constexpr bool kFloat = std::is_same_v<T, half> || std::is_same_v<T, float>;

// One element of a vector result: fp32 natively (IEEE single, like the device), 16-bit floats
// exactly in double and rounded once, integers wrapping.
template <typename T, typename F>
inline T Apply(F f, T a, T b) {
  if constexpr (std::is_same_v<T, float>) return static_cast<float>(f(a, b));
  else if constexpr (std::is_same_v<T, half>) return rm::FromDouble<half>(f(rm::ToDouble(a), rm::ToDouble(b)), RoundMode::CAST_RINT);
  else return static_cast<T>(static_cast<int64_t>(f(static_cast<int64_t>(a), static_cast<int64_t>(b))));
}

template <typename T, typename F>
inline void Binary(const char* op, const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, int32_t count, F f) {
  CheckOperand(dst, count, op, "dst");
  CheckOperand(a, count, op, "src0");
  CheckOperand(b, count, op, "src1");
  rm::VecRead(a.buf_, op);
  rm::VecRead(b.buf_, op);
  rm::VecWriteCheck(dst.buf_, op);
  T* d = dst.Data();
  const T* x = a.Data();
  const T* y = b.Data();
  for (int32_t i = 0; i < count; ++i) d[i] = Apply<T>(f, x[i], y[i]);
  rm::VecWrote(dst.buf_);
  ++rm::Ctx().stats.vectorInstructions;
}

template <typename T, typename F>
inline void Unary(const char* op, const LocalTensor<T>& dst, const LocalTensor<T>& a, int32_t count, F f) {
  CheckOperand(dst, count, op, "dst");
  CheckOperand(a, count, op, "src");
  rm::VecRead(a.buf_, op);
  rm::VecWriteCheck(dst.buf_, op);
  T* d = dst.Data();
  const T* x = a.Data();
  for (int32_t i = 0; i < count; ++i) d[i] = Apply<T>([&](auto u, auto) { return f(u); }, x[i], x[i]);
  rm::VecWrote(dst.buf_);
  ++rm::Ctx().stats.vectorInstructions;
}
}  // namespace detail

#define RMSFUSE_BINARY(NAME, EXPR, TYPES_OK)                                                                              \
  template <typename T>                                                                                                   \
  inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, const int32_t& count) { \
    static_assert(TYPES_OK, #NAME ": element type not supported by the vector unit");                                    \
    detail::Binary(#NAME, dst, src0, src1, count, [](auto a, auto b) { return EXPR; });                                  \
  }
RMSFUSE_BINARY(Add, a + b, detail::kArith<T>)
RMSFUSE_BINARY(Sub, a - b, detail::kArith<T>)
RMSFUSE_BINARY(Mul, a * b, detail::kArith<T>)
RMSFUSE_BINARY(Div, a / b, detail::kFloat<T>)
RMSFUSE_BINARY(Max, (a > b ? a : b), detail::kArith<T>)
RMSFUSE_BINARY(Min, (a < b ? a : b), detail::kArith<T>)
#undef RMSFUSE_BINARY

#define RMSFUSE_SCALAR(NAME, EXPR)                                                                                  \
  template <typename T, typename U>                                                                                 \
  inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const U& scalarValue, const int32_t& count) { \
    static_assert(detail::kArith<T>, #NAME ": element type not supported by the vector unit");                     \
    const T s = static_cast<T>(scalarValue);                                                                        \
    detail::Unary(#NAME, dst, src, count, [s](auto a) {                                                             \
      const auto b = static_cast<decltype(a)>(rm::ToDouble(s));                                                     \
      return EXPR;                                                                                                  \
    });                                                                                                             \
  }
RMSFUSE_SCALAR(Adds, a + b)
RMSFUSE_SCALAR(Muls, a * b)
RMSFUSE_SCALAR(Maxs, (a > b ? a : b))
RMSFUSE_SCALAR(Mins, (a < b ? a : b))
#undef RMSFUSE_SCALAR

template <typename T>
inline void Abs(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t& count) {
  static_assert(detail::kFloat<T>, "Abs: element type not supported");
  detail::Unary("Abs", dst, src, count, [](auto a) { return a < 0 ? -a : a; });
}

template <typename T>
inline void Sqrt(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t& count) {
  static_assert(detail::kFloat<T>, "Sqrt: element type not supported");
  detail::Unary("Sqrt", dst, src, count, [](auto a) { return std::sqrt(a); });
}

template <typename T, typename U>
inline void Duplicate(const LocalTensor<T>& dst, const U& scalarValue, const int32_t& count) {
  const char* op = "Duplicate";
  detail::CheckOperand(dst, count, op, "dst");
  rm::VecWriteCheck(dst.buf_, op);
  const T s = static_cast<T>(scalarValue);
  T* d = dst.Data();
  for (int32_t i = 0; i < count; ++i) d[i] = s;
  rm::VecWrote(dst.buf_);
  ++rm::Ctx().stats.vectorInstructions;
}

// int32_t -> half conversion scale (Cast int32_t -> half multiplies by it).
inline void SetDeqScale(half scale) {
  rm::Ctx().deqScaleSet = true;
  rm::Ctx().deqScale = rm::ToDouble(scale);
}

namespace detail {
// Round modes the Atlas A2 Cast table lists for a (src, dst) pair; 0 = pair not supported.
constexpr unsigned kNone = 1u << 0, kRint = 1u << 1, kFloor = 1u << 2, kCeil = 1u << 3, kRound = 1u << 4, kTrunc = 1u << 5,
                   kOdd = 1u << 6;
constexpr unsigned kRounding = kRint | kFloor | kCeil | kRound | kTrunc;
template <typename D, typename S>
constexpr unsigned CastModes() {
  if constexpr (std::is_same_v<S, half>) {
    if constexpr (std::is_same_v<D, float>) return kNone;
    if constexpr (std::is_same_v<D, int32_t> || std::is_same_v<D, int16_t>) return kRounding;
    if constexpr (std::is_same_v<D, int8_t> || std::is_same_v<D, uint8_t>) return kRounding | kNone;
  }
  if constexpr (std::is_same_v<S, float>) {
    if constexpr (std::is_same_v<D, half>) return kRounding | kOdd | kNone;
    if constexpr (std::is_same_v<D, float> || std::is_same_v<D, int32_t> || std::is_same_v<D, int16_t> ||
                  std::is_same_v<D, int64_t> || std::is_same_v<D, bfloat16_t>)
      return kRounding;
  }
  if constexpr (std::is_same_v<S, bfloat16_t>) {
    if constexpr (std::is_same_v<D, float>) return kNone;
    if constexpr (std::is_same_v<D, int32_t>) return kRounding;
  }
  if constexpr (std::is_same_v<S, int8_t> || std::is_same_v<S, uint8_t>) {
    if constexpr (std::is_same_v<D, half>) return kNone;
  }
  if constexpr (std::is_same_v<S, int16_t>) {
    if constexpr (std::is_same_v<D, half>) return kRounding | kNone;
    if constexpr (std::is_same_v<D, float>) return kNone;
  }
  if constexpr (std::is_same_v<S, int32_t>) {
    if constexpr (std::is_same_v<D, float>) return kRounding | kNone;
    if constexpr (std::is_same_v<D, int16_t> || std::is_same_v<D, int64_t>) return kNone;
    if constexpr (std::is_same_v<D, half>) return kRounding | kNone | kOdd;  // mode ignored: SetDeqScale path
  }
  return 0;
}
inline const char* ModeName(RoundMode m) {
  static const char* names[] = {"CAST_NONE", "CAST_RINT", "CAST_FLOOR", "CAST_CEIL", "CAST_ROUND", "CAST_TRUNC", "CAST_ODD"};
  return names[static_cast<int>(m)];
}
}  // namespace detail

template <typename D, typename S>
inline void Cast(const LocalTensor<D>& dst, const LocalTensor<S>& src, const RoundMode& round_mode, const uint32_t count) {
  constexpr unsigned modes = detail::CastModes<D, S>();
  static_assert(modes != 0, "Cast: this (src, dst) type pair is not supported by the vector unit");
  const char* op = "Cast";
  if (!(modes & (1u << static_cast<int>(round_mode))))
    Fail("Cast %s -> %s does not support %s", rm::TypeName<S>::value, rm::TypeName<D>::value, detail::ModeName(round_mode));
  detail::CheckOperand(dst, count, op, "dst");
  detail::CheckOperand(src, count, op, "src");
  rm::VecRead(src.buf_, op);
  rm::VecWriteCheck(dst.buf_, op);
  D* d = dst.Data();
  const S* s = src.Data();
  if constexpr (std::is_same_v<S, int32_t> && std::is_same_v<D, half>) {
    if (!rm::Ctx().deqScaleSet) Fail("Cast int32_t -> half needs SetDeqScale(half) first");
    const double scale = rm::Ctx().deqScale;
    for (uint32_t i = 0; i < count; ++i) d[i] = rm::FromDouble<half>(static_cast<double>(s[i]) * scale, RoundMode::CAST_RINT);
  } else if constexpr (std::is_same_v<S, float> && std::is_same_v<D, float>) {
    // float -> float rounds to an integral value in the given mode.
    for (uint32_t i = 0; i < count; ++i) {
      const double v = s[i];
      const double r = std::isfinite(v) ? rm::RoundMagnitude(std::fabs(v), std::signbit(v), round_mode) : std::fabs(v);
      d[i] = static_cast<float>(std::signbit(v) ? -r : r);
    }
  } else {
    // Overlapping operands are read before they are written element by element, like the
    // device's in-order repeats; kernels here never overlap src and dst of a Cast anyway.
    for (uint32_t i = 0; i < count; ++i) d[i] = rm::FromDouble<D>(rm::ToDouble(s[i]), round_mode);
  }
  rm::VecWrote(dst.buf_);
  ++rm::Ctx().stats.vectorInstructions;
}

namespace detail {
template <typename T, typename F>
inline void Reduce(const char* op, const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& work, int32_t count, F f) {
  static_assert(kFloat<T>, "reductions support half and float");
  constexpr int32_t perRepeat = ONE_REPEAT_BYTE_SIZE / sizeof(T);
  constexpr int32_t perBlock = ONE_BLK_SIZE / sizeof(T);
  const int32_t repeats = (count + perRepeat - 1) / perRepeat;
  const int32_t need = (repeats + perBlock - 1) / perBlock * perBlock;
  CheckOperand(dst, 1, op, "dst");
  CheckOperand(src, count, op, "src");
  CheckOperand(work, need, op, "workLocal (ceil(count / elements per repeat), rounded up to a 32-byte block)");
  rm::VecRead(src.buf_, op);
  rm::VecWriteCheck(dst.buf_, op);
  rm::VecWriteCheck(work.buf_, op);
  // Binary tree inside each 256-byte repeat, then a binary tree over the repeat results (the
  // documented order); the partial results are left in workLocal, as on the device.
  std::vector<T> v;
  T* w = work.Data();
  for (int32_t r = 0; r < repeats; ++r) {
    const int32_t n = std::min(perRepeat, count - r * perRepeat);
    v.assign(src.Data() + r * perRepeat, src.Data() + r * perRepeat + n);
    for (size_t len = v.size(); len > 1; len = (len + 1) / 2) {
      for (size_t i = 0; i < len / 2; ++i) v[i] = Apply<T>(f, v[2 * i], v[2 * i + 1]);
      if (len % 2) v[len / 2] = v[len - 1];
    }
    w[r] = v[0];
  }
  v.assign(w, w + repeats);
  for (size_t len = v.size(); len > 1; len = (len + 1) / 2) {
    for (size_t i = 0; i < len / 2; ++i) v[i] = Apply<T>(f, v[2 * i], v[2 * i + 1]);
    if (len % 2) v[len / 2] = v[len - 1];
  }
  dst.Data()[0] = v[0];
  rm::VecWrote(dst.buf_);
  rm::VecWrote(work.buf_);
  ++rm::Ctx().stats.vectorInstructions;
}
}  // namespace detail

template <typename T, bool isSetMask = true>
inline void ReduceSum(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& workLocal, const int32_t count) {
  detail::Reduce("ReduceSum", dst, src, workLocal, count, [](auto a, auto b) { return a + b; });
}

template <typename T>
inline void ReduceMax(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& workLocal, const int32_t count,
                      bool calIndex = false) {
  if (calIndex) Fail("ReduceMax: calIndex is not modelled");
  detail::Reduce("ReduceMax", dst, src, workLocal, count, [](auto a, auto b) { return a > b ? a : b; });
}

// Sum of the first `mask` elements of each of repeatTime 256-byte repeats; result r goes to
// dst[r * dstRepStride] (dstRepStride in elements), repeat r starts srcRepStride 32-byte blocks
// after repeat r-1, and blocks inside a repeat are srcBlkStride blocks apart.
template <typename T, bool isSetMask = true>
inline void WholeReduceSum(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t mask, const int32_t repeatTime,
                           const int32_t dstRepStride, const int32_t srcBlkStride, const int32_t srcRepStride) {
  static_assert(detail::kFloat<T>, "WholeReduceSum supports half and float");
  const char* op = "WholeReduceSum";
  constexpr int32_t perRepeat = ONE_REPEAT_BYTE_SIZE / sizeof(T);
  constexpr int32_t perBlock = ONE_BLK_SIZE / sizeof(T);
  if (mask < 1 || mask > perRepeat) Fail("%s: mask %d outside [1, %d]", op, mask, perRepeat);
  if (repeatTime < 1 || repeatTime > 255) Fail("%s: repeatTime %d outside [1, 255]", op, repeatTime);
  // dst only needs element alignment (results are single elements, dstRepStride elements apart).
  if (!dst.buf_) Fail("%s: dst is an empty LocalTensor", op);
  if (dst.GetPhyAddr() % sizeof(T)) Fail("%s: dst is not %zu-byte aligned", op, sizeof(T));
  if (static_cast<int64_t>(repeatTime - 1) * dstRepStride + 1 > dst.GetSize())
    Fail("%s: %d results %d elements apart do not fit the %u elements of dst", op, repeatTime, dstRepStride, dst.GetSize());
  const int64_t lastBlock = (mask - 1) / perBlock;
  const int64_t srcExtent = (static_cast<int64_t>(repeatTime - 1) * srcRepStride + lastBlock * srcBlkStride) * perBlock + perBlock;
  detail::CheckOperand(src, std::min<int64_t>(srcExtent, src.GetSize()), op, "src");
  rm::VecRead(src.buf_, op);
  rm::VecWriteCheck(dst.buf_, op);
  std::vector<T> v;
  for (int32_t r = 0; r < repeatTime; ++r) {
    v.clear();
    for (int32_t j = 0; j < mask; ++j) {
      const int64_t idx = (static_cast<int64_t>(r) * srcRepStride + (j / perBlock) * srcBlkStride) * perBlock + j % perBlock;
      if (idx >= src.GetSize()) Fail("%s: repeat %d reads element %lld beyond src's %u", op, r, static_cast<long long>(idx), src.GetSize());
      v.push_back(src.Data()[idx]);
    }
    for (size_t len = v.size(); len > 1; len = (len + 1) / 2) {
      for (size_t i = 0; i < len / 2; ++i) v[i] = detail::Apply<T>([](auto a, auto b) { return a + b; }, v[2 * i], v[2 * i + 1]);
      if (len % 2) v[len / 2] = v[len - 1];
    }
    dst.Data()[static_cast<int64_t>(r) * dstRepStride] = v[0];
  }
  rm::VecWrote(dst.buf_);
  ++rm::Ctx().stats.vectorInstructions;
}

}  // namespace AscendC

// Reads a tiling struct of the given type from the kernel's tiling argument.
#define GET_TILING_DATA_WITH_STRUCT(type, var, tilingArg) \
  type var;                                               \
  std::memcpy(&var, (tilingArg), sizeof(type))

#endif  // RMSFUSE_KERNEL_OPERATOR_H
