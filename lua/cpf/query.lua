-- cpf.query — queries in three stages, each its own module: building one (cpf.query.build:
-- conditions, keys, aggregates, CPF measures, the immutable Query), compiling its plan for a
-- dataset (cpf.query.compile), running it in one C call (cpf.query.run). This module puts them
-- together: the constructors, and Query with its run method.
local q = require "cpf.query.build"
local run = require "cpf.query.run"

q.Query.run = run.query

return q
