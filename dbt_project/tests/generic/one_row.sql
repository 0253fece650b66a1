{# Fails unless the model holds exactly one row. #}
{% test one_row(model) %}

select n_rows
from (select count(*) as n_rows from {{ model }}) as counted
where n_rows <> 1

{% endtest %}
