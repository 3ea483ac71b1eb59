/* The dropout decision shared by dropout.c and attention.c: element i (a flat index into its tensor)
 * of a call seeded with `seed` is dropped when this byte is below round(256 p). */
#include <stdint.h>

/* murmur3's 32-bit finaliser: a bijection with full avalanche, here applied twice with the seed's
 * two halves mixed in, so that masks of different seeds and neighbouring elements decorrelate. */
static inline uint32_t mix(uint32_t h) {
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

static inline uint32_t hash32(uint32_t seed_lo, uint32_t seed_hi, uint32_t i) {
    return mix(mix(i * 0x9e3779b9u + seed_lo) ^ seed_hi);
}

/* Element i's byte: one hash serves 4 elements. In each run of 64 elements (from a multiple of 64),
 * element 16 j + k takes byte j of the hash of (run start / 4 + k), so dropout.c reads 16 elements'
 * bytes as 16 lanes of one vector of hashes. */
static inline uint32_t drop_byte(uint32_t seed_lo, uint32_t seed_hi, uint32_t i) {
    return (hash32(seed_lo, seed_hi, ((i >> 6) << 4) + (i & 15u)) >> (8 * ((i >> 4) & 3u))) & 255u;
}
