/* error.c — an engine error as a value: the code that says what failed, the position in the
 * file where there is one, and the message; the first error recorded is the one reported. */
#include <stdarg.h>
#include <stdio.h>

#include "cpf.h"

static void error_set(cpf_error *err, cpf_error_code code, size_t row, size_t column,
                      const char *fmt, va_list ap) {
  if (err->code) return; /* the first error is the one worth reporting */
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  err->code = code == CPF_OK ? CPF_ERR_USAGE : code;
  err->row = row;
  err->column = column;
}

void cpf_error_set(cpf_error *err, cpf_error_code code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  error_set(err, code, 0, 0, fmt, ap);
  va_end(ap);
}

void cpf_error_at(cpf_error *err, cpf_error_code code, size_t row, size_t column,
                  const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  error_set(err, code, row, column, fmt, ap);
  va_end(ap);
}

const char *cpf_error_kind(cpf_error_code code) {
  static const char *const kinds[] = {"none", "data", "io", "memory", "cancelled", "callback", "usage"};
  return (unsigned)code < sizeof kinds / sizeof kinds[0] ? kinds[code] : "usage";
}
