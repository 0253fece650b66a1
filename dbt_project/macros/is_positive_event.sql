{#-
    The implicit-feedback filter of interactions: the event's type is in
    var('positive_event_types') and its value is NULL or at least var('min_positive_value').
    `relation` is the alias of the stg_events relation the condition applies to.
-#}
{% macro is_positive_event(relation) -%}
    {%- set positive_event_types = var('positive_event_types') -%}
    {%- if positive_event_types is string -%}
        {%- set positive_event_types = [positive_event_types] -%}
    {%- endif -%}
    {{ relation }}.event_type in (
        {%- for event_type in positive_event_types %}
        '{{ event_type }}'{{ ',' if not loop.last }}
        {%- endfor %}
    )
      and ({{ relation }}.value is null or {{ relation }}.value >= {{ var('min_positive_value') }})
{%- endmacro %}
