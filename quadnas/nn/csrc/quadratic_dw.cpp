// Fused quadratic depthwise conv on CPU: y = dw_a(x) * dw_b(x) + dw_c(x) (+ bias in dw_c).
//
// Layout: channels-last (NHWC memory), which is what QuadraNet feeds the op (LayerNorm2d's
// output). Every inner loop runs over a block of L channels with compile-time length, so the
// compiler keeps the three accumulators in vector registers; the taps and the output pixels
// are loops around it. Work is split over (sample, output row) with at::parallel_for (OpenMP).
//
// Forward reads x once per tap from cache and writes y once: a and b never reach memory.
// Backward recomputes a and b, forms g*b and g*a (two transient NHWC buffers), then
//   grad_x = sum over the three kernels of the transposed depthwise conv of (g*b, g*a, g),
//   grad_w = correlations of x with (g*b, g*a, g), grad_bias = sum of g.

#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <type_traits>
#include <vector>

namespace {

struct Geometry {
  int64_t n, h, w, c, k, p;
  int64_t taps() const { return k * k; }
  int64_t plane() const { return h * w * c; }
};

// Channels per register block: one vector register (GCC/Clang vector extension; 64 bytes with
// AVX-512, else 32, which narrower ISAs split in two), and output pixels per call in the interior
// of a row, where they share each tap's weights. A channel tail runs one channel (a scalar) at a time.
#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#else
constexpr int kVecBytes = 32;
#endif
template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(kVecBytes)));
};
template <typename T>
using VecT = typename Vec<T>::type;

template <typename P, typename T>
inline P load(const T* p) {
  P v;
  __builtin_memcpy(&v, p, sizeof(P));
  return v;
}
template <typename P, typename T>
inline void store(T* p, const P& v) {
  __builtin_memcpy(p, &v, sizeof(P));
}
constexpr int kPixels = 4;

// Range of kernel offsets d in [0, k) with 0 <= pos + d - p < size.
inline std::pair<int64_t, int64_t> valid_taps(int64_t pos, int64_t size, int64_t k, int64_t p) {
  return {std::max<int64_t>(0, p - pos), std::min<int64_t>(k, size + p - pos)};
}

// Whether pixels j .. j + J - 1 of a row see every column tap of the kernel (and of its transpose).
inline bool interior(int64_t j, int64_t J, int64_t w, int64_t p) { return j >= p && j + J - 1 <= w - 1 - p; }

// Calls body(j, J) for runs of J = kPixels interior pixels and J = 1 elsewhere, covering [0, w).
template <typename F>
inline void row_pixels(int64_t w, int64_t p, const F& body) {
  for (int64_t j = 0; j < w;) {
    if (interior(j, kPixels, w, p)) {
      body(j, std::integral_constant<int, kPixels>{});
      j += kPixels;
    } else {
      body(j, std::integral_constant<int, 1>{});
      j += 1;
    }
  }
}

// Pixels (i, j .. j + J - 1), channels [c0, c0 + L): a, b and c in registers. Forward writes
// y = a * b + c; backward (Backward = true) writes ga = g * b and gb = g * a instead.
template <typename T, typename P, int J, bool Backward>
inline void quadratic_pixels(const T* __restrict x, const T* __restrict wt, const T* __restrict bias,
                             const T* __restrict g, T* __restrict out0, T* __restrict out1, const Geometry& s,
                             int64_t i, int64_t j, int64_t c0) {
  P a[J], b[J], c[J];
  for (int q = 0; q < J; ++q) {
    a[q] = P{} * T(0);
    b[q] = a[q];
    c[q] = Backward ? a[q] : load<P>(bias + c0);
  }
  const int64_t plane_taps = s.taps() * s.c;
  const auto [di0, di1] = valid_taps(i, s.h, s.k, s.p);
  const auto [dj0, dj1] = J == 1 ? valid_taps(j, s.w, s.k, s.p) : std::pair<int64_t, int64_t>{0, s.k};
  for (int64_t di = di0; di < di1; ++di) {
    for (int64_t dj = dj0; dj < dj1; ++dj) {
      const T* xs = x + ((i + di - s.p) * s.w + (j + dj - s.p)) * s.c + c0;
      const T* w = wt + (di * s.k + dj) * s.c + c0;
      const P wa = load<P>(w), wb = load<P>(w + plane_taps);
      const P wc = Backward ? wa : load<P>(w + 2 * plane_taps);
      for (int q = 0; q < J; ++q) {
        const P v = load<P>(xs + q * s.c);
        a[q] += wa * v;
        b[q] += wb * v;
        if constexpr (!Backward) c[q] += wc * v;
      }
    }
  }
  for (int q = 0; q < J; ++q) {
    const int64_t at = (i * s.w + j + q) * s.c + c0;
    if constexpr (Backward) {
      const P gq = load<P>(g + at);
      store(out0 + at, gq * b[q]);
      store(out1 + at, gq * a[q]);
    } else {
      store(out0 + at, a[q] * b[q] + c[q]);
    }
  }
}

template <typename T, bool Backward>
void quadratic_rows(const T* x, const T* wt, const T* bias, const T* g, T* out0, T* out1, const Geometry& s) {
  constexpr int L = sizeof(VecT<T>) / sizeof(T);
  at::parallel_for(0, s.n * s.h, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t offset = (row / s.h) * s.plane(), i = row % s.h;
      const T* xn = x + offset;
      const T* gn = Backward ? g + offset : nullptr;
      T* o0 = out0 + offset;
      T* o1 = Backward ? out1 + offset : nullptr;
      row_pixels(s.w, s.p, [&](int64_t j, auto pixels) {
        constexpr int J = decltype(pixels)::value;
        int64_t c0 = 0;
        for (; c0 + L <= s.c; c0 += L)
          quadratic_pixels<T, VecT<T>, J, Backward>(xn, wt, bias, gn, o0, o1, s, i, j, c0);
        for (; c0 < s.c; ++c0) quadratic_pixels<T, T, J, Backward>(xn, wt, bias, gn, o0, o1, s, i, j, c0);
      });
    }
  });
}

// grad_x at pixels (r, q .. q + J - 1), channels [c0, c0 + L):
// the sum over taps of w[tap] * G[r - di + p][q - dj + p] for G = g * b, g * a and g.
template <typename T, typename P, int J>
inline void grad_input_pixels(const T* __restrict ga, const T* __restrict gb, const T* __restrict g,
                              const T* __restrict wt, T* __restrict gx, const Geometry& s, int64_t r, int64_t q,
                              int64_t c0) {
  P acc[J];
  for (int e = 0; e < J; ++e) acc[e] = P{} * T(0);
  const int64_t plane_taps = s.taps() * s.c;
  // output row r + p - di lies in [0, h) for di in (r + p - h, r + p]; likewise the column
  const int64_t di0 = std::max<int64_t>(0, r + s.p - s.h + 1), di1 = std::min<int64_t>(s.k, r + s.p + 1);
  const int64_t dj0 = J == 1 ? std::max<int64_t>(0, q + s.p - s.w + 1) : 0;
  const int64_t dj1 = J == 1 ? std::min<int64_t>(s.k, q + s.p + 1) : s.k;
  for (int64_t di = di0; di < di1; ++di) {
    for (int64_t dj = dj0; dj < dj1; ++dj) {
      const int64_t at = ((r + s.p - di) * s.w + (q + s.p - dj)) * s.c + c0;
      const T* w = wt + (di * s.k + dj) * s.c + c0;
      const P wa = load<P>(w), wb = load<P>(w + plane_taps), wc = load<P>(w + 2 * plane_taps);
      for (int e = 0; e < J; ++e) {
        const int64_t o = at + e * s.c;
        acc[e] += wa * load<P>(ga + o) + wb * load<P>(gb + o) + wc * load<P>(g + o);
      }
    }
  }
  for (int e = 0; e < J; ++e) store(gx + (r * s.w + q + e) * s.c + c0, acc[e]);
}

template <typename T>
void grad_input(const T* ga, const T* gb, const T* g, const T* wt, T* gx, const Geometry& s) {
  constexpr int L = sizeof(VecT<T>) / sizeof(T);
  at::parallel_for(0, s.n * s.h, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t o = (row / s.h) * s.plane(), r = row % s.h;
      row_pixels(s.w, s.p, [&](int64_t q, auto pixels) {
        constexpr int J = decltype(pixels)::value;
        int64_t c0 = 0;
        for (; c0 + L <= s.c; c0 += L)
          grad_input_pixels<T, VecT<T>, J>(ga + o, gb + o, g + o, wt, gx + o, s, r, q, c0);
        for (; c0 < s.c; ++c0) grad_input_pixels<T, T, J>(ga + o, gb + o, g + o, wt, gx + o, s, r, q, c0);
      });
    }
  });
}

// Weight and bias gradients of output row i, channels [c0, c0 + L), added to dw ([3][taps][c]) and db.
template <typename T, typename P>
inline void grad_weight_row(const T* __restrict x, const T* __restrict ga, const T* __restrict gb,
                            const T* __restrict g, T* __restrict dw, T* __restrict db, const Geometry& s, int64_t i,
                            int64_t c0) {
  const int64_t plane_taps = s.taps() * s.c, row = i * s.w * s.c + c0;
  const auto [di0, di1] = valid_taps(i, s.h, s.k, s.p);
  for (int64_t di = di0; di < di1; ++di) {
    for (int64_t dj = 0; dj < s.k; ++dj) {
      P sa = P{} * T(0), sb = sa, sc = sa;
      const auto [j0, j1] = std::pair<int64_t, int64_t>{std::max<int64_t>(0, s.p - dj),
                                                         std::min<int64_t>(s.w, s.w + s.p - dj)};
      const T* xs = x + ((i + di - s.p) * s.w + (dj - s.p)) * s.c + c0;
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t at = row + j * s.c;
        const P v = load<P>(xs + j * s.c);
        sa += load<P>(ga + at) * v;
        sb += load<P>(gb + at) * v;
        sc += load<P>(g + at) * v;
      }
      T* w = dw + (di * s.k + dj) * s.c + c0;
      store(w, load<P>(w) + sa);
      store(w + plane_taps, load<P>(w + plane_taps) + sb);
      store(w + 2 * plane_taps, load<P>(w + 2 * plane_taps) + sc);
    }
  }
  P sum = P{} * T(0);
  for (int64_t j = 0; j < s.w; ++j) sum += load<P>(g + row + j * s.c);
  store(db + c0, load<P>(db + c0) + sum);
}

// dw ([3][taps][c]) and db ([c]): each of `chunks` workers sums its rows into its own slice, then one sum.
template <typename T>
void grad_weight(const T* x, const T* ga, const T* gb, const T* g, T* partial, int64_t chunks, const Geometry& s) {
  constexpr int L = sizeof(VecT<T>) / sizeof(T);
  const int64_t rows = s.n * s.h, stride = 3 * s.taps() * s.c + s.c;
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      T* dw = partial + chunk * stride;
      T* db = dw + 3 * s.taps() * s.c;
      for (int64_t row = rows * chunk / chunks; row < rows * (chunk + 1) / chunks; ++row) {
        const int64_t o = (row / s.h) * s.plane(), i = row % s.h;
        int64_t c0 = 0;
        for (; c0 + L <= s.c; c0 += L)
          grad_weight_row<T, VecT<T>>(x + o, ga + o, gb + o, g + o, dw, db, s, i, c0);
        for (; c0 < s.c; ++c0) grad_weight_row<T, T>(x + o, ga + o, gb + o, g + o, dw, db, s, i, c0);
      }
    }
  });
}

Geometry check_inputs(const at::Tensor& x, const at::Tensor& weights) {
  TORCH_CHECK(x.dim() == 4 && x.device().is_cpu(), "quadratic_dw: x must be a 4-d CPU tensor (N, C, H, W)");
  TORCH_CHECK(x.is_contiguous(at::MemoryFormat::ChannelsLast), "quadratic_dw: x must be channels-last contiguous");
  const int64_t c = x.size(1), k = weights.size(-1);
  TORCH_CHECK(weights.dim() == 5 && weights.size(0) == 3 && weights.size(1) == c && weights.size(2) == 1 &&
                  weights.size(3) == k && k % 2 == 1,
              "quadratic_dw: weights must be (3, C, 1, k, k) with an odd k and C = x.size(1)");
  TORCH_CHECK(weights.scalar_type() == x.scalar_type(), "quadratic_dw: weights and x must share a dtype");
  return {x.size(0), x.size(2), x.size(3), c, k, k / 2};
}

// (3, C, 1, k, k) -> (3, k * k, C): the taps of a, b and c with channels innermost.
at::Tensor taps_last(const at::Tensor& weights) {
  return weights.reshape({3, weights.size(1), -1}).transpose(1, 2).contiguous();
}

at::Tensor forward(const at::Tensor& x, const at::Tensor& weights, const at::Tensor& bias) {
  const Geometry s = check_inputs(x, weights);
  const at::Tensor wt = taps_last(weights), b = bias.contiguous();
  at::Tensor y = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "quadratic_dw_forward", [&] {
    quadratic_rows<scalar_t, false>(x.const_data_ptr<scalar_t>(), wt.const_data_ptr<scalar_t>(),
                                    b.const_data_ptr<scalar_t>(), nullptr, y.mutable_data_ptr<scalar_t>(), nullptr,
                                    s);
  });
  return y;
}

// Returns grad_x (undefined unless needed), grad_weights (3, C, 1, k, k) and grad_bias (C).
std::vector<at::Tensor> backward(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& weights,
                                 bool needs_input, bool needs_weights) {
  const Geometry s = check_inputs(x, weights);
  TORCH_CHECK(grad.sizes() == x.sizes() && grad.is_contiguous(at::MemoryFormat::ChannelsLast),
              "quadratic_dw: grad must be channels-last contiguous and shaped like x");
  const at::Tensor wt = taps_last(weights);
  at::Tensor ga = at::empty_like(x, at::MemoryFormat::ChannelsLast), gb = at::empty_like(ga);
  at::Tensor gx, dw, db;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "quadratic_dw_backward", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    scalar_t* gap = ga.mutable_data_ptr<scalar_t>();
    scalar_t* gbp = gb.mutable_data_ptr<scalar_t>();
    quadratic_rows<scalar_t, true>(xp, wt.const_data_ptr<scalar_t>(), nullptr, gp, gap, gbp, s);
    if (needs_input) {
      gx = at::empty_like(x, at::MemoryFormat::ChannelsLast);
      grad_input<scalar_t>(gap, gbp, gp, wt.const_data_ptr<scalar_t>(), gx.mutable_data_ptr<scalar_t>(), s);
    }
    if (needs_weights) {
      const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), s.n * s.h));
      at::Tensor partial = at::zeros({chunks, 3 * s.taps() * s.c + s.c}, x.options());
      grad_weight<scalar_t>(xp, gap, gbp, gp, partial.mutable_data_ptr<scalar_t>(), chunks, s);
      const at::Tensor total = partial.sum(0);
      dw = total.narrow(0, 0, 3 * s.taps() * s.c).view({3, s.taps(), s.c}).transpose(1, 2).reshape(weights.sizes());
      db = total.narrow(0, 3 * s.taps() * s.c, s.c).clone();
    }
  });
  return {gx, dw, db};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "fused quadratic depthwise conv, channels-last");
  m.def("backward", &backward, "its gradients: grad_x, grad_weights (3, C, 1, k, k), grad_bias");
}
