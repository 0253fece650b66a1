{#- Keep the latest loaded snapshot of each catalog entity (ties broken by file name). -#}
{% macro latest_snapshot(key) %}
    qualify row_number() over (
        partition by {{ key }}
        order by ingested_at desc, source_file desc
    ) = 1
{% endmacro %}

{#- Keep the earliest load of each logged record (an event or a served request) landed more than once. -#}
{% macro earliest_load(key) %}
    qualify row_number() over (
        partition by {{ key }}
        order by ingested_at asc, source_file asc
    ) = 1
{% endmacro %}
