/* dataset.c — a dataset: columns of equal length in header order, owned together (or mapped
 * from a snapshot), looked up by name, measured, and concatenated from several parts. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cpf.h"

void dataset_free(cpf_dataset *ds) {
  size_t i;
  if (!ds) return;
  for (i = 0; i < ds->ncols; i++) column_free(&ds->cols[i]);
  free(ds->cols);
  free(ds->scratch_gid);
  free(ds->scratch_codes);
  free(ds->scratch_selection);
  for (i = 0; i < sizeof ds->scratch_slots / sizeof ds->scratch_slots[0]; i++) free(ds->scratch_slots[i]);
  pool_close(ds->pool);
  if (ds->mapping) munmap(ds->mapping, ds->mapping_size);
  free(ds->snapshot_path);
  free(ds->column_state);
  if (ds->distinct_keys)
    for (i = 0; i < ds->ncols; i++) free(ds->distinct_keys[i]);
  free(ds->distinct_keys);
  free(ds->distinct_count);
  free(ds->column_damage);
  rejects_free(&ds->rejects);
  free(ds);
}

size_t dataset_memory(const cpf_dataset *ds) {
  size_t i, n = sizeof *ds + ds->ncols * sizeof *ds->cols;
  for (i = 0; i < ds->ncols; i++) n += column_memory(&ds->cols[i]);
  return n;
}

int dataset_find_column(const cpf_dataset *ds, const char *name) {
  size_t i;
  for (i = 0; i < ds->ncols; i++)
    if (strcmp(ds->cols[i].name, name) == 0) return (int)i;
  return -1;
}

/* ---- concatenation of datasets with the same columns (several monthly extractions) ---- */

cpf_dataset *dataset_concat(cpf_dataset *const *parts, size_t nparts, const char *const *sources,
                            cpf_error *err) {
  cpf_dataset *ds;
  size_t total = 0, p, j;
  int rc;
  char msg[64];
  if (nparts == 0) { cpf_error_set(err, CPF_ERR_USAGE, "no dataset to concatenate"); return NULL; }
  for (p = 0; p < nparts; p++) {
    total += parts[p]->rows;
    if (parts[p]->ncols != parts[0]->ncols) {
      cpf_error_set(err, CPF_ERR_DATA, "%s has %zu columns, %s has %zu", sources[0], parts[0]->ncols, sources[p],
                    parts[p]->ncols);
      return NULL;
    }
    for (j = 0; j < parts[0]->ncols; j++) {
      const cpf_column *a = &parts[0]->cols[j], *b = &parts[p]->cols[j];
      if (strcmp(a->name, b->name) != 0) {
        cpf_error_set(err, CPF_ERR_DATA, "column %zu is '%s' in %s but '%s' in %s", j + 1, a->name, sources[0],
                      b->name, sources[p]);
        return NULL;
      }
      if (a->type != b->type) {
        cpf_error_set(err, CPF_ERR_DATA, "column '%s' is %s in %s but %s in %s", a->name, cpf_type_name(a->type),
                      sources[0], cpf_type_name(b->type), sources[p]);
        return NULL;
      }
    }
  }
  ds = cpf_calloc(1, sizeof *ds);
  if (!ds || !(ds->cols = cpf_calloc(parts[0]->ncols + 1, sizeof *ds->cols))) goto oom;
  for (j = 0; j <= parts[0]->ncols; j++) {
    int is_source = j == parts[0]->ncols;
    const cpf_column *first = is_source ? NULL : &parts[0]->cols[j];
    cpf_column *out = &ds->cols[j];
    if (column_init(out, is_source ? "source" : first->name, is_source ? "source" : first->label,
                    is_source ? CPF_TYPE_STRING : first->type, '.', total) != 0) goto oom;
    ds->ncols = j + 1;
    if (is_source) {
      for (p = 0; p < nparts; p++) {
        uint32_t code = dictionary_intern(&out->dict, sources[p], strlen(sources[p]));
        if (code == UINT32_MAX || column_append_code(out, code, parts[p]->rows) != 0) goto oom;
      }
    } else {
      for (p = 0; p < nparts; p++) /* the largest scale keeps every value exact */
        if (parts[p]->cols[j].scale > out->scale) out->scale = parts[p]->cols[j].scale;
      for (p = 0; p < nparts; p++) {
        rc = column_append_column(out, &parts[p]->cols[j]);
        if (rc == -2) {
          cpf_error_set(err, CPF_ERR_DATA, "column '%s': a value of %s does not fit 64 bits at %d decimals",
                        first->name, sources[p], out->scale);
          goto fail;
        }
        if (rc != 0) goto oom;
      }
    }
    if (column_finish(out, msg, sizeof msg) != 0) goto oom;
  }
  ds->rows = total;
  for (p = 0; p < nparts; p++) /* the records each part set aside, named by their part */
    if (rejects_append(&ds->rejects, &parts[p]->rejects, sources[p]) != 0) goto oom;
  return ds;
oom:
  cpf_error_set(err, CPF_ERR_MEMORY, "out of memory");
fail:
  dataset_free(ds);
  return NULL;
}
