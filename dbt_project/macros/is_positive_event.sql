{#-
    The implicit-feedback filter of interactions: the event's type is one the dataset contract
    declares positive and its value is NULL or at least var('min_positive_value').
    `relation` is the alias of the stg_events relation the condition applies to.
-#}
{% macro is_positive_event(relation) -%}
    {{ relation }}.event_type in (
        {%- for event_type in var('contract')['positive_event_types'] %}
        '{{ event_type }}'{{ ',' if not loop.last }}
        {%- endfor %}
    )
      and ({{ relation }}.value is null or {{ relation }}.value >= {{ var('min_positive_value') }})
{%- endmacro %}
