"""jieba 0.42.1's accurate mode (jieba.cut(text, cut_all=False, HMM=True)) over sentences written
here — dictionary words, unknown names the HMM must group, digits, decimals and percentages,
English, full-width and ASCII punctuation, spaces, \\r\\n, emoji — for tok::Jieba
(tests/tokenizer_jieba_test.cpp), which reads the same jieba package's dict.txt and finalseg
tables. Also LongBench's Chinese scorers (metrics.py's qa_f1_zh_score and rouge_zh_score,
transcribed below with the `rouge` 1.0.1 package they call) over answer pairs.

Run: ~/.venvs/yak-jinja/bin/python tools/golden/make_jieba_goldens.py
     (pip install jieba==0.42.1 rouge==1.0.1; Debian's python3-jieba is the same release)
Writes tests/golden/tokenizer/jieba_cuts.json and tests/golden/eval/longbench_zh_scorers.json.
"""
import json
import re
import string
from collections import Counter
from pathlib import Path

import jieba
from rouge import Rouge

ROOT = Path(__file__).resolve().parents[2]

SENTENCES = [
    "我来到北京清华大学",
    "他来到了网易杭研大厦",
    "小明硕士毕业于中国科学院计算所，后在日本京都大学深造",
    "今天天气不错，我们去公园散步吧！",
    "李小福是创新办主任也是云计算方面的专家",
    "2023年第三季度营收增长了12.5%，净利润为3.14亿元。",
    "请用Python写一个快速排序算法，并解释时间复杂度O(n log n)。",
    "苹果公司发布了新款iPhone 15 Pro Max，售价7999元起",
    "会议将于下午3点在A座1203室召开。\r\n请准时参加。",
    "“你好，”她说，“欢迎来到上海。”",
    "这是一个测试…… 结果——还不错。",
    "机器学习（Machine Learning）是人工智能的一个分支",
    "深度学习模型需要大量的训练数据和计算资源",
    "张三丰和李四光讨论了量子纠缠的问题",
    "北京市朝阳区建国路88号SOHO现代城",
    "喜欢😀表情符号的人越来越多了",
    "  前后有空格  \t制表符\n换行",
    "C++和C#都是编程语言，AT&T是一家公司",
    "ＡＢＣ全角字母和１２３全角数字",
    "长江大桥的建设历时五年，耗资约二十亿",
    "据报道，某地发生了5.8级地震，暂无人员伤亡报告。",
    "研究生命的起源",
    "结婚的和尚未结婚的",
    "他说的确实在理",
    "中华人民共和国成立于1949年10月1日",
    "",
    "abc-def_ghi.jkl%",
    "第一章 总则 第1条 为了规范管理，制定本办法。",
    "模型在LongBench上的得分为45.3分，比基线高出7.2个百分点",
    "我爱自然语言处理。自然语言处理是计算机科学领域与人工智能领域中的一个重要方向。",
]

ZH_PAIRS = [
    ("北京是中国的首都", "中国的首都是北京"),
    ("答案是清华大学", "清华大学"),
    ("会议在下午三点召开，地点在A座", "会议于下午3点在A座召开"),
    ("不知道", "李小福是创新办主任"),
    ("“上海”。", "上海"),
    ("深度学习模型需要大量数据。训练很慢。", "深度学习需要大量的训练数据"),
    ("", "有答案"),
    ("他说的确实在理", "他说得在理"),
]


def normalize_zh_answer(s):
    """metrics.py: lower text and remove punctuation, extra whitespace."""

    def white_space_fix(text):
        return "".join(text.split())

    def remove_punc(text):
        cn_punctuation = "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."
        all_punctuation = set(string.punctuation + cn_punctuation)
        return "".join(ch for ch in text if ch not in all_punctuation)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_punc(lower(s)))


def f1_score(prediction, ground_truth):
    common = Counter(prediction) & Counter(ground_truth)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction)
    recall = 1.0 * num_same / len(ground_truth)
    return (2 * precision * recall) / (precision + recall)


def qa_f1_zh_score(prediction, ground_truth):
    prediction_tokens = [normalize_zh_answer(t) for t in jieba.cut(prediction, cut_all=False)]
    ground_truth_tokens = [normalize_zh_answer(t) for t in jieba.cut(ground_truth, cut_all=False)]
    prediction_tokens = [t for t in prediction_tokens if len(t) > 0]
    ground_truth_tokens = [t for t in ground_truth_tokens if len(t) > 0]
    return f1_score(prediction_tokens, ground_truth_tokens)


def rouge_score(prediction, ground_truth):
    try:
        return Rouge().get_scores([prediction], [ground_truth], avg=True)["rouge-l"]["f"]
    except Exception:
        return 0.0


def rouge_zh_score(prediction, ground_truth):
    prediction = " ".join(jieba.cut(prediction, cut_all=False))
    ground_truth = " ".join(jieba.cut(ground_truth, cut_all=False))
    return rouge_score(prediction, ground_truth)


def main():
    jieba.initialize()
    cuts = [{"text": s, "words": list(jieba.cut(s, cut_all=False, HMM=True))} for s in SENTENCES]
    for c in cuts:
        assert "".join(c["words"]) == c["text"]
    out = ROOT / "tests" / "golden" / "tokenizer" / "jieba_cuts.json"
    out.write_text(json.dumps({"jieba": jieba.__version__, "cuts": cuts}, ensure_ascii=False, indent=1) + "\n")
    scores = [{"pred": p, "answer": a, "qa_f1_zh": qa_f1_zh_score(p, a), "rouge_zh": rouge_zh_score(p, a)}
              for p, a in ZH_PAIRS]
    out2 = ROOT / "tests" / "golden" / "eval" / "longbench_zh_scorers.json"
    out2.write_text(json.dumps({"jieba": jieba.__version__, "pairs": scores}, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {len(cuts)} cuts and {len(scores)} scorer pairs")


if __name__ == "__main__":
    main()
