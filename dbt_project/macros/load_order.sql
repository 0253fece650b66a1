{#-
    Keep one load of each `key` when the same entity or record was landed more than once:
    'latest' for catalog snapshots (the newest wins), 'earliest' for logged records such as events
    and served requests (the first load wins, so a re-landed copy changes nothing). Ties are broken
    by file name.
-#}
{% macro keep_one_load(key, keep) %}
    {%- set direction = {'latest': 'desc', 'earliest': 'asc'}[keep] -%}
    qualify row_number() over (
        partition by {{ key }}
        order by ingested_at {{ direction }}, source_file {{ direction }}
    ) = 1
{% endmacro %}
