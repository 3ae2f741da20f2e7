// CPU model of the Ascend C API: number formats.
//
// half and bfloat16_t are stored as their 16-bit encodings, exactly as on the device, so a
// kernel's UB and GM bytes are bit-identical to what the hardware would hold. Conversions take a
// RoundMode with the meanings of the Ascend C documentation (Cast): CAST_NONE rounds like
// CAST_RINT when precision is lost, CAST_ROUND is half away from zero, CAST_ODD is von Neumann
// rounding. Finite values beyond a format's range saturate to its largest finite value (the
// documented default "overflow saturates"); NaN stays NaN, and becomes 0 when converted to an
// integer type.
#ifndef RMSFUSE_MODEL_NUMERIC_H
#define RMSFUSE_MODEL_NUMERIC_H

#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace AscendC {
enum class RoundMode { CAST_NONE = 0, CAST_RINT, CAST_FLOOR, CAST_CEIL, CAST_ROUND, CAST_TRUNC, CAST_ODD };
}  // namespace AscendC

namespace rmsfuse_model {

using AscendC::RoundMode;

// Rounds a non-negative magnitude v to an integer; `negative` is the sign of the value it belongs
// to, which decides the direction of FLOOR and CEIL.
inline double RoundMagnitude(double v, bool negative, RoundMode m) {
  switch (m) {
    case RoundMode::CAST_NONE:
    case RoundMode::CAST_RINT: {
      // Ties to even, independent of the host's current rounding mode.
      double f = std::floor(v);
      double d = v - f;
      if (d > 0.5) return f + 1;
      if (d < 0.5) return f;
      return std::fmod(f, 2.0) == 0.0 ? f : f + 1;
    }
    case RoundMode::CAST_FLOOR: return negative ? std::ceil(v) : std::floor(v);
    case RoundMode::CAST_CEIL: return negative ? std::floor(v) : std::ceil(v);
    case RoundMode::CAST_ROUND: return std::floor(v + 0.5);
    case RoundMode::CAST_TRUNC: return std::floor(v);
    case RoundMode::CAST_ODD: {
      double f = std::floor(v);
      if (f == v) return v;
      return std::fmod(f, 2.0) == 0.0 ? f + 1 : f;
    }
  }
  return v;
}

// A binary floating format with eBits exponent and mBits mantissa bits (IEEE-style bias).
template <int E_BITS, int M_BITS>
struct Format {
  static constexpr int kBias = (1 << (E_BITS - 1)) - 1;
  static constexpr int kEmin = 1 - kBias;  // exponent of the smallest normal
  static constexpr int kEmax = kBias;      // exponent of the largest finite
  static constexpr uint32_t kExpMask = ((1u << E_BITS) - 1) << M_BITS;
  static constexpr uint32_t kSign = 1u << (E_BITS + M_BITS);

  static uint16_t Encode(double x, RoundMode mode) {
    if (std::isnan(x)) return static_cast<uint16_t>(kExpMask | (1u << (M_BITS - 1)));
    const bool neg = std::signbit(x);
    const uint32_t sign = neg ? kSign : 0;
    const double a = std::fabs(x);
    if (std::isinf(a)) return static_cast<uint16_t>(sign | kExpMask);
    if (a == 0.0) return static_cast<uint16_t>(sign);
    int e2 = 0;
    std::frexp(a, &e2);
    int e = e2 - 1;  // 2^e <= a < 2^(e+1)
    if (e < kEmin) {
      // Subnormal: integer multiples of 2^(kEmin - M_BITS). A result of 2^M_BITS is exactly the
      // encoding of the smallest normal, so no special case is needed.
      double q = RoundMagnitude(std::ldexp(a, M_BITS - kEmin), neg, mode);
      return static_cast<uint16_t>(sign | static_cast<uint32_t>(q));
    }
    double q = RoundMagnitude(std::ldexp(a, M_BITS - e), neg, mode);  // in [2^M, 2^(M+1)]
    if (q == std::ldexp(1.0, M_BITS + 1)) {
      q /= 2;
      e += 1;
    }
    if (e > kEmax) return static_cast<uint16_t>(sign | (kExpMask - (1u << M_BITS)) | ((1u << M_BITS) - 1));
    return static_cast<uint16_t>(sign | (static_cast<uint32_t>(e + kBias) << M_BITS) |
                                 (static_cast<uint32_t>(q) - (1u << M_BITS)));
  }

  static double Decode(uint16_t b) {
    const double sign = (b & kSign) ? -1.0 : 1.0;
    const uint32_t e = (b & kExpMask) >> M_BITS;
    const uint32_t m = b & ((1u << M_BITS) - 1);
    if (e == (1u << E_BITS) - 1) return m ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
    if (e == 0) return sign * std::ldexp(static_cast<double>(m), kEmin - M_BITS);
    return sign * std::ldexp(static_cast<double>(m | (1u << M_BITS)), static_cast<int>(e) - kBias - M_BITS);
  }
};

using F16 = Format<5, 10>;
using BF16 = Format<8, 7>;

// fp32 with a round mode (double -> float): values are rounded through the same magnitude rule.
inline float EncodeF32(double x, RoundMode mode) {
  if (mode == RoundMode::CAST_NONE || mode == RoundMode::CAST_RINT) return static_cast<float>(x);
  if (std::isnan(x) || std::isinf(x) || x == 0.0) return static_cast<float>(x);
  const bool neg = std::signbit(x);
  const double a = std::fabs(x);
  int e2 = 0;
  std::frexp(a, &e2);
  int e = e2 - 1;
  if (e < -126) e = -126;
  double q = RoundMagnitude(std::ldexp(a, 23 - e), neg, mode);
  double r = std::ldexp(q, e - 23);
  if (r > static_cast<double>(std::numeric_limits<float>::max())) r = std::numeric_limits<float>::max();
  return static_cast<float>(neg ? -r : r);
}

}  // namespace rmsfuse_model

// The device's 16-bit float types. Arithmetic on them goes through float (as the API's scalar
// conversions do); vector instructions round each result back with CAST_RINT.
struct half {
  uint16_t bits;
  half() = default;
  half(float f) : bits(rmsfuse_model::F16::Encode(f, AscendC::RoundMode::CAST_RINT)) {}  // NOLINT: implicit like the device type
  half(double f) : bits(rmsfuse_model::F16::Encode(f, AscendC::RoundMode::CAST_RINT)) {}
  half(int v) : bits(rmsfuse_model::F16::Encode(v, AscendC::RoundMode::CAST_RINT)) {}
  operator float() const { return static_cast<float>(rmsfuse_model::F16::Decode(bits)); }
  static half FromBits(uint16_t b) {
    half h;
    h.bits = b;
    return h;
  }
};

struct bfloat16_t {
  uint16_t bits;
  bfloat16_t() = default;
  bfloat16_t(float f) : bits(rmsfuse_model::BF16::Encode(f, AscendC::RoundMode::CAST_RINT)) {}  // NOLINT
  bfloat16_t(double f) : bits(rmsfuse_model::BF16::Encode(f, AscendC::RoundMode::CAST_RINT)) {}
  bfloat16_t(int v) : bits(rmsfuse_model::BF16::Encode(v, AscendC::RoundMode::CAST_RINT)) {}
  operator float() const { return static_cast<float>(rmsfuse_model::BF16::Decode(bits)); }
  static bfloat16_t FromBits(uint16_t b) {
    bfloat16_t h;
    h.bits = b;
    return h;
  }
};

namespace rmsfuse_model {

template <typename T> struct TypeName;
template <> struct TypeName<float> { static constexpr const char* value = "float"; };
template <> struct TypeName<half> { static constexpr const char* value = "half"; };
template <> struct TypeName<bfloat16_t> { static constexpr const char* value = "bfloat16_t"; };
template <> struct TypeName<int8_t> { static constexpr const char* value = "int8_t"; };
template <> struct TypeName<uint8_t> { static constexpr const char* value = "uint8_t"; };
template <> struct TypeName<int16_t> { static constexpr const char* value = "int16_t"; };
template <> struct TypeName<int32_t> { static constexpr const char* value = "int32_t"; };
template <> struct TypeName<uint32_t> { static constexpr const char* value = "uint32_t"; };
template <> struct TypeName<int64_t> { static constexpr const char* value = "int64_t"; };

// Exact value of an element as a double.
template <typename T>
inline double ToDouble(T v) {
  if constexpr (std::is_same_v<T, half>) return F16::Decode(v.bits);
  else if constexpr (std::is_same_v<T, bfloat16_t>) return BF16::Decode(v.bits);
  else return static_cast<double>(v);
}

// Round a double to T with the given mode; integers saturate and take NaN to 0.
template <typename T>
inline T FromDouble(double x, RoundMode mode) {
  if constexpr (std::is_same_v<T, half>) return half::FromBits(F16::Encode(x, mode));
  else if constexpr (std::is_same_v<T, bfloat16_t>) return bfloat16_t::FromBits(BF16::Encode(x, mode));
  else if constexpr (std::is_same_v<T, float>) return EncodeF32(x, mode);
  else {
    static_assert(std::is_integral_v<T>, "unsupported element type");
    if (std::isnan(x)) return T(0);
    double r = RoundMagnitude(std::fabs(x), std::signbit(x), mode);
    if (std::signbit(x)) r = -r;
    const double lo = static_cast<double>(std::numeric_limits<T>::min());
    const double hi = static_cast<double>(std::numeric_limits<T>::max());
    if (r < lo) r = lo;
    if (r > hi) r = hi;
    return static_cast<T>(r);
  }
}

}  // namespace rmsfuse_model

#endif  // RMSFUSE_MODEL_NUMERIC_H
