{#-
    Dialect-specific SQL behind adapter-dispatched macros, so the project compiles for any dbt
    adapter: `duckdb__` keeps the DuckDB forms the platform runs on, `default__` is standard SQL
    that PostgreSQL runs (tests/test_postgres.py builds the models there). Spark and Trino need
    their own `spark__` / `trino__` forms only for the list macros (ordered_list, list_length,
    list_positions, split_nonempty); see docs/deployment-at-scale.md.
    Date arithmetic uses dbt's own cross-database macros (dbt.datediff, dbt.dateadd).
-#}

{#- The SQL name of an 8-byte float. -#}
{% macro type_double() %}{{ return(adapter.dispatch('type_double')()) }}{% endmacro %}
{% macro duckdb__type_double() %}double{% endmacro %}
{% macro default__type_double() %}double precision{% endmacro %}


{#- Aggregate `expression` into a list ordered by `order_by`. -#}
{% macro ordered_list(expression, order_by) %}{{ return(adapter.dispatch('ordered_list')(expression, order_by)) }}{% endmacro %}
{% macro duckdb__ordered_list(expression, order_by) %}list({{ expression }} order by {{ order_by }}){% endmacro %}
{% macro default__ordered_list(expression, order_by) %}array_agg({{ expression }} order by {{ order_by }}){% endmacro %}


{#- Number of elements of a list (NULL for a NULL list). -#}
{% macro list_length(list) %}{{ return(adapter.dispatch('list_length')(list)) }}{% endmacro %}
{% macro duckdb__list_length(list) %}len({{ list }}){% endmacro %}
{% macro default__list_length(list) %}cardinality({{ list }}){% endmacro %}


{#-
    In a select list beside `unnest(list)`: the 1-based position of each unnested element, one
    row per element.
-#}
{% macro list_positions(list) %}{{ return(adapter.dispatch('list_positions')(list)) }}{% endmacro %}
{% macro duckdb__list_positions(list) %}unnest(generate_series(1, len({{ list }}))){% endmacro %}
{% macro default__list_positions(list) %}generate_series(1, cardinality({{ list }})){% endmacro %}


{#- `text` split on `delimiter` into a list of strings, empty parts removed. -#}
{% macro split_nonempty(text, delimiter) %}{{ return(adapter.dispatch('split_nonempty')(text, delimiter)) }}{% endmacro %}
{% macro duckdb__split_nonempty(text, delimiter) -%}
    list_filter(string_split({{ text }}, '{{ delimiter }}'), lambda g: g <> '')
{%- endmacro %}
{% macro default__split_nonempty(text, delimiter) -%}
    array_remove(string_to_array({{ text }}, '{{ delimiter }}'), '')
{%- endmacro %}


{#- The year of a date, as a bigint. -#}
{% macro year_of(date) %}{{ return(adapter.dispatch('year_of')(date)) }}{% endmacro %}
{% macro duckdb__year_of(date) %}year({{ date }}){% endmacro %}
{% macro default__year_of(date) %}cast(extract(year from {{ date }}) as bigint){% endmacro %}


{#- The continuous (interpolated) `fraction` quantile of a timestamp column. -#}
{% macro timestamp_quantile(column, fraction) %}{{ return(adapter.dispatch('timestamp_quantile')(column, fraction)) }}{% endmacro %}
{% macro duckdb__timestamp_quantile(column, fraction) %}quantile_cont({{ column }}, {{ fraction }}){% endmacro %}
{% macro default__timestamp_quantile(column, fraction) -%}
    {#- percentile_cont interpolates numbers and intervals, not timestamps: go through an interval. -#}
    (timestamp '1970-01-01'
        + percentile_cont({{ fraction }}) within group (order by {{ column }} - timestamp '1970-01-01'))
{%- endmacro %}


{#-
    In a FROM clause after a relation: keep only its rows whose `columns` occur in `relation`
    (a semi join: no row is repeated, no column of `relation` is added).
-#}
{% macro semi_join(relation, columns) %}{{ return(adapter.dispatch('semi_join')(relation, columns)) }}{% endmacro %}
{% macro duckdb__semi_join(relation, columns) %}semi join {{ relation }} using ({{ columns | join(', ') }}){% endmacro %}
{% macro default__semi_join(relation, columns) -%}
    inner join (select distinct {{ columns | join(', ') }} from {{ relation }}) as {{ relation }}_keys
        using ({{ columns | join(', ') }})
{%- endmacro %}
