{#
    Fails for every combination of the given columns that occurs more than once.
    A dependency-free stand-in for dbt_utils.unique_combination_of_columns.

    data_tests:
      - unique_combination:
          arguments:
            combination_of_columns: [user_id, item_id]
#}
{% test unique_combination(model, combination_of_columns) %}

{%- set columns_csv = combination_of_columns | join(', ') %}

select
    {{ columns_csv }},
    count(*) as n_rows

from {{ model }}
group by {{ columns_csv }}
having count(*) > 1

{% endtest %}
