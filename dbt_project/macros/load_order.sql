{#-
    Keep one load of each `key` when the same entity or record was landed more than once:
    'latest' for catalog snapshots (the newest wins), 'earliest' for logged records such as events
    and served requests (the first load wins, so a re-landed copy changes nothing). Ties are broken
    by file name.

    Follows `from {{ relation }}` (default: the model's `renamed` CTE). DuckDB filters with
    QUALIFY; other engines with NOT EXISTS on a later (or earlier) load, which keeps the same row
    because ingestion quarantines a key repeated within one file.
-#}
{% macro keep_one_load(key, keep, relation='renamed') %}
    {{- return(adapter.dispatch('keep_one_load')(key, keep, relation)) -}}
{% endmacro %}

{% macro duckdb__keep_one_load(key, keep, relation) %}
    {%- set direction = {'latest': 'desc', 'earliest': 'asc'}[keep] -%}
    qualify row_number() over (
        partition by {{ key }}
        order by ingested_at {{ direction }}, source_file {{ direction }}
    ) = 1
{% endmacro %}

{% macro default__keep_one_load(key, keep, relation) %}
    {%- set preferred = {'latest': '>', 'earliest': '<'}[keep] -%}
    where not exists (
        select 1
        from {{ relation }} as other_load
        where
            {%- for column in key.split(',') %}
            other_load.{{ column | trim }} = {{ relation }}.{{ column | trim }} and
            {%- endfor %}
            (other_load.ingested_at, other_load.source_file)
                {{ preferred }} ({{ relation }}.ingested_at, {{ relation }}.source_file)
    )
{% endmacro %}
