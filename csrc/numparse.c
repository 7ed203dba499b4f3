/* numparse.c — exact, locale-independent parsing of the numbers, months and dates of a CSV.
 * Never strtod on the fast path: a French locale would read "1.5" as 1. */
#include <locale.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpf.h"

static int is_mark(char c, char mark) {
  return mark ? c == mark : (c == '.' || c == ',');
}

num_status parse_integer(const char *s, size_t len, char decimal_mark, int64_t *out) {
  const char *end = s + len;
  int negative = 0;
  uint64_t v = 0;
  const uint64_t limit = (uint64_t)INT64_MAX;
  if (s < end && (*s == '-' || *s == '+')) negative = (*s++ == '-');
  if (s == end || (unsigned)(*s - '0') > 9) return NUM_BAD;
  while (s < end && (unsigned)(*s - '0') <= 9) {
    unsigned d = (unsigned)(*s++ - '0');
    if (v > (limit + negative - d) / 10) return NUM_RANGE;
    v = v * 10 + d;
  }
  if (s < end && is_mark(*s, decimal_mark)) {
    /* "12.0" is still the integer 12; "12.5" is not an integer */
    int nonzero = 0;
    s++;
    while (s < end && (unsigned)(*s - '0') <= 9) nonzero |= (*s++ != '0');
    if (s != end) return NUM_BAD;
    if (nonzero) return NUM_FRACTION;
  }
  if (s != end) return NUM_BAD;
  *out = negative ? (int64_t)(0 - v) : (int64_t)v;
  return NUM_OK;
}

static const int64_t pow10_i64[19] = {
  1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL, 10000000LL, 100000000LL,
  1000000000LL, 10000000000LL, 100000000000LL, 1000000000000LL, 10000000000000LL,
  100000000000000LL, 1000000000000000LL, 10000000000000000LL, 100000000000000000LL,
  1000000000000000000LL};

num_status parse_decimal(const char *s, size_t len, char decimal_mark, int scale,
                         int64_t *out, int *needed) {
  const char *end = s + len, *frac, *frac_end;
  int negative = 0, digits = 0, frac_digits;
  int64_t v = 0, f = 0;
  if (s < end && (*s == '-' || *s == '+')) negative = (*s++ == '-');
  while (s < end && (unsigned)(*s - '0') <= 9) {
    int d = *s++ - '0';
    if (v > (INT64_MAX - d) / 10) return NUM_RANGE;
    v = v * 10 + d;
    digits++;
  }
  frac = frac_end = s;
  if (s < end && is_mark(*s, decimal_mark)) {
    frac = ++s;
    while (s < end && (unsigned)(*s - '0') <= 9) s++;
    frac_end = s;
    digits += (int)(frac_end - frac);
  }
  if (s != end || digits == 0) return NUM_BAD;
  while (frac_end > frac && frac_end[-1] == '0') frac_end--; /* 1.50 needs one decimal */
  frac_digits = (int)(frac_end - frac);
  if (frac_digits > scale) {
    *needed = frac_digits;
    return NUM_FRACTION;
  }
  for (; frac < frac_end; frac++) f = f * 10 + (*frac - '0');
  f *= pow10_i64[scale - frac_digits];
  if (v > (INT64_MAX - f) / pow10_i64[scale]) return NUM_RANGE;
  v = v * pow10_i64[scale] + f;
  *out = negative ? -v : v;
  return NUM_OK;
}

static const double pow10_exact[23] = {
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

char numparse_locale_point(void) {
  const char *point = localeconv()->decimal_point;
  return point && point[0] && !point[1] ? point[0] : 0;
}

/* A syntactically valid literal that the fast path cannot round exactly: let the C library
 * do it, after writing the decimal mark the current locale expects (as lua-cjson does). The
 * locale's mark comes from the caller, read once by numparse_locale_point on the calling
 * thread: localeconv returns a static buffer that another thread may rewrite. */
static num_status parse_number_slow(const char *s, size_t len, char mark_found, char locale_point,
                                    double *out) {
  char buf[128], *endp;
  size_t i;
  if (len >= sizeof buf) return NUM_BAD;
  memcpy(buf, s, len);
  buf[len] = '\0';
  for (i = 0; i < len; i++)
    if (buf[i] == mark_found && locale_point) buf[i] = locale_point;
  *out = strtod(buf, &endp);
  if (*endp != '\0') return NUM_BAD;
  /* 1e400 would be +inf, which cpf would then write as a missing value: refuse it (a value too
   * small for a double becomes 0 or a denormal, which is rounding, not a change of meaning) */
  return isinf(*out) ? NUM_RANGE : NUM_OK;
}

num_status parse_number(const char *s, size_t len, char decimal_mark, char locale_point,
                        double *out) {
  const char *start = s, *end = s + len;
  int negative = 0, digits = 0, significant = 0, exp10 = 0;
  char mark_found = 0;
  uint64_t m = 0;
  if (s < end && (*s == '-' || *s == '+')) negative = (*s++ == '-');
  for (; s < end && (unsigned)(*s - '0') <= 9; s++, digits++) {
    if (m == 0 && *s == '0') continue;
    if (significant < 19) { m = m * 10 + (uint64_t)(*s - '0'); significant++; }
    else exp10++;
  }
  if (s < end && is_mark(*s, decimal_mark)) {
    mark_found = *s++;
    for (; s < end && (unsigned)(*s - '0') <= 9; s++, digits++) {
      if (m == 0 && *s == '0') { exp10--; continue; }
      if (significant < 19) { m = m * 10 + (uint64_t)(*s - '0'); significant++; exp10--; }
    }
  }
  if (digits == 0) return NUM_BAD;
  if (s < end && (*s == 'e' || *s == 'E')) {
    int eneg = 0, e = 0, edigits = 0;
    s++;
    if (s < end && (*s == '-' || *s == '+')) eneg = (*s++ == '-');
    for (; s < end && (unsigned)(*s - '0') <= 9; s++, edigits++)
      if (e < 100000) e = e * 10 + (*s - '0');
    if (edigits == 0) return NUM_BAD;
    exp10 += eneg ? -e : e;
  }
  if (s != end) return NUM_BAD;
  if (m == 0) { *out = negative ? -0.0 : 0.0; return NUM_OK; }
  if (m <= (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
    /* both operands exact, so one IEEE operation rounds correctly */
    double v = (double)m;
    v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
    *out = negative ? -v : v;
    return NUM_OK;
  }
  return parse_number_slow(start, len, mark_found, locale_point, out);
}

static int two_digits(const char *s) {
  if ((unsigned)(s[0] - '0') > 9 || (unsigned)(s[1] - '0') > 9) return -1;
  return (s[0] - '0') * 10 + (s[1] - '0');
}

static int read_year_month(const char *s, int64_t *year, int *month) {
  int hi = two_digits(s), lo = two_digits(s + 2);
  if (hi < 0 || lo < 0 || s[4] != '-') return -1;
  *year = hi * 100 + lo;
  *month = two_digits(s + 5);
  return *month >= 1 && *month <= 12 ? 0 : -1;
}

static int days_in_month(int64_t y, int m) {
  static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return days[m - 1] + (m == 2 && leap);
}

num_status parse_month(const char *s, size_t len, int64_t *out) {
  int64_t year;
  int month;
  if (len != 7 && len != 10) return NUM_BAD;
  if (read_year_month(s, &year, &month) != 0) return NUM_BAD;
  if (len == 10) { /* YYYY-MM-DD: the export writes the first day of the month */
    int day = two_digits(s + 8);
    if (s[7] != '-' || day < 1 || day > days_in_month(year, month)) return NUM_BAD;
  }
  *out = year * 12 + (month - 1);
  return NUM_OK;
}

num_status parse_date(const char *s, size_t len, int64_t *out) {
  int64_t year;
  int month, day;
  if (len != 10 || read_year_month(s, &year, &month) != 0 || s[7] != '-') return NUM_BAD;
  day = two_digits(s + 8);
  if (day < 1 || day > days_in_month(year, month)) return NUM_BAD;
  *out = days_from_civil(year, (unsigned)month, (unsigned)day);
  return NUM_OK;
}

/* Howard Hinnant's days_from_civil / civil_from_days: proleptic Gregorian, no tables. */
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  int64_t era, yoe, doy, doe;
  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = y - era * 400;
  doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void civil_from_days(int64_t days, int64_t *year, int *month, int *day) {
  /* Any stored value must give a defined result (a snapshot may hold any bits): beyond 2^60
   * days, where no parsed date lies, the arithmetic below would overflow, so clamp there. */
  const int64_t limit = (int64_t)1 << 60;
  int64_t z, era, doe, yoe, y, doy, mp, m;
  if (days > limit) days = limit;
  if (days < -limit) days = -limit;
  z = days + 719468;
  era = (z >= 0 ? z : z - 146096) / 146097;
  doe = z - era * 146097;
  yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = yoe + era * 400;
  doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  mp = (5 * doy + 2) / 153;
  m = mp < 10 ? mp + 3 : mp - 9;
  *day = (int)(doy - (153 * mp + 2) / 5 + 1);
  *month = (int)m;
  *year = y + (m <= 2);
}

void format_date(int64_t days, char *buf) {
  int64_t y;
  int m, d;
  civil_from_days(days, &y, &m, &d);
  sprintf(buf, "%04lld-%02d-%02d", (long long)y, m, d);
}

void format_month(int64_t month, char *buf) {
  /* floor division without negating or multiplying back: defined for every int64 */
  int64_t y = month / 12, m = month % 12;
  if (m < 0) {
    m += 12;
    y--;
  }
  sprintf(buf, "%04lld-%02lld", (long long)y, (long long)(m + 1));
}

/* ---- numbers as text ---- */

/* The C library writes the current locale's decimal point: whatever it wrote that is neither
 * a digit, a sign nor an exponent becomes '.' (at most one such run in a printf number). */
static size_t c_point(char *buf, size_t len) {
  size_t i, j = 0;
  int in_mark = 0;
  for (i = 0; i < len; i++) {
    char c = buf[i];
    int plain = (c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' || c == 'E' ||
                (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (plain) { buf[j++] = c; in_mark = 0; }
    else if (!in_mark) { buf[j++] = '.'; in_mark = 1; }
  }
  buf[j] = 0;
  return j;
}

size_t format_fixed(double v, int decimals, char *buf, size_t size) {
  int n = snprintf(buf, size, "%.*f", decimals, v);
  if (n < 0) { buf[0] = 0; return 0; }
  return c_point(buf, (size_t)n < size ? (size_t)n : size - 1);
}

/* The first k (1 to 17) whose "%.{k}g" text reads back as v: the definition of the text, and
 * the path of the doubles the fast one below does not take. */
static size_t shortest_by_trial(double v, char locale_point, char *buf, size_t size) {
  int digits;
  for (digits = 1; digits <= 17; digits++) {
    double back;
    int n = snprintf(buf, size, "%.*g", digits, v);
    size_t len;
    if (n < 0) break;
    len = c_point(buf, (size_t)n < size ? (size_t)n : size - 1);
    if (parse_number(buf, len, '.', locale_point, &back) == NUM_OK && back == v) return len;
  }
  {
    int n = snprintf(buf, size, "%.17g", v);
    if (n < 0) { buf[0] = 0; return 0; }
    return c_point(buf, (size_t)n < size ? (size_t)n : size - 1);
  }
}

/* v's first k significant digits, correctly rounded, and the exponent of the first: the C
 * library's "%.{k-1}e" read back (whatever decimal point the locale writes). */
static int digits_of(double v, int k, char *digits, int *exponent) {
  char text[48];
  int n = snprintf(text, sizeof text, "%.*e", k - 1, v), i = 0, got = 0;
  if (n <= 0 || n >= (int)sizeof text) return -1;
  for (; i < n && text[i] != 'e'; i++)
    if (text[i] >= '0' && text[i] <= '9' && got < k) digits[got++] = text[i];
  if (i == n || got != k) return -1;
  *exponent = atoi(text + i + 1);
  return 0;
}

/* The 17 digits d17 (exponent x) rounded to k: 0 when they end exactly halfway, where only the
 * binary value knows which way the C library rounds (the caller asks it then). */
static int round_digits(const char *d17, int x, int k, char *out, int *out_x) {
  int i, rest_zero = 1;
  for (i = k + 1; i < 17; i++) rest_zero &= d17[i] == '0';
  if (d17[k] == '5' && rest_zero) return 0;
  memcpy(out, d17, (size_t)k);
  *out_x = x;
  if (d17[k] >= '5') {
    for (i = k - 1; i >= 0 && out[i] == '9'; i--) out[i] = '0';
    if (i < 0) { out[0] = '1'; (*out_x)++; }
    else out[i]++;
  }
  return 1;
}

/* "%.{precision}g" of the decimal d[0].d[1..n-1] x 10^x as the C library writes it in the C
 * locale: trailing zeros dropped, fixed notation for exponents from -4 to precision - 1. */
static size_t g_text(int negative, const char *d, int n, int x, int precision, char *buf) {
  char *p = buf;
  int i;
  while (n > 1 && d[n - 1] == '0') n--;
  if (negative) *p++ = '-';
  if (x >= -4 && x < precision) {
    if (x < 0) {
      *p++ = '0';
      *p++ = '.';
      for (i = 0; i < -x - 1; i++) *p++ = '0';
      memcpy(p, d, (size_t)n);
      p += n;
    } else {
      for (i = 0; i <= x; i++) *p++ = i < n ? d[i] : '0';
      if (n > x + 1) {
        *p++ = '.';
        memcpy(p, d + x + 1, (size_t)(n - x - 1));
        p += n - x - 1;
      }
    }
  } else {
    *p++ = d[0];
    if (n > 1) {
      *p++ = '.';
      memcpy(p, d + 1, (size_t)(n - 1));
      p += n - 1;
    }
    p += sprintf(p, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
  }
  *p = 0;
  return (size_t)(p - buf);
}

/* The text of shortest_by_trial with one call to the C library instead of up to 17: a normal
 * double rounded to 15 digits that reads back as itself has no shorter text (two decimals of
 * at most 15 digits never round to the same double), so its digits without the trailing zeros
 * are the answer; else 16 digits, else 17. */
size_t format_shortest(double v, char locale_point, char *buf, size_t size) {
  char d17[17], dk[17];
  int x, xk, k;
  if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
    if (v == 0) { memcpy(buf, "0", 2); return 1; }
    return (size_t)sprintf(buf, "%lld", (long long)v);
  }
  if (size < 48 || v != v || v - v != 0 || fabs(v) < 1e-300 || digits_of(v, 17, d17, &x) != 0)
    return shortest_by_trial(v, locale_point, buf, size);
  for (k = 15; k <= 16; k++) {
    double back;
    size_t len;
    if (!round_digits(d17, x, k, dk, &xk) && digits_of(v, k, dk, &xk) != 0)
      return shortest_by_trial(v, locale_point, buf, size);
    len = g_text(v < 0, dk, k, xk, k, buf);
    if (parse_number(buf, len, '.', locale_point, &back) == NUM_OK && back == v) {
      int n = k;
      while (n > 1 && dk[n - 1] == '0') n--;
      return k == 15 ? g_text(v < 0, dk, n, xk, n, buf) : len;
    }
  }
  return g_text(v < 0, d17, 17, x, 17, buf);
}
