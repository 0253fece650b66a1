{#- Keep the latest loaded snapshot of each catalog entity (ties broken by file name). -#}
{% macro latest_snapshot(key) %}
    qualify row_number() over (
        partition by {{ key }}
        order by ingested_at desc, source_file desc
    ) = 1
{% endmacro %}
