{#
    Fails for every non-NULL value outside [min_value, max_value] (either bound optional).
    A dependency-free stand-in for dbt_utils.accepted_range.
#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}

select {{ column_name }}

from {{ model }}
where {{ column_name }} is not null
  and (
      false
      {%- if min_value is not none %}
      or {{ column_name }} < {{ min_value }}
      {%- endif %}
      {%- if max_value is not none %}
      or {{ column_name }} > {{ max_value }}
      {%- endif %}
  )

{% endtest %}
