"""The papers hf_limber implements (and the metrics it reports), as BibTeX: model cards and the `evaluate` modules cite from here.

A leaf: it imports nothing, so any layer may read it.
"""

CITATIONS = {
    "clip": """@inproceedings{radford2021clip,
  title = {Learning Transferable Visual Models From Natural Language Supervision},
  author = {Radford, Alec and Kim, Jong Wook and Hallacy, Chris and Ramesh, Aditya and Goh, Gabriel and
            Agarwal, Sandhini and Sastry, Girish and Askell, Amanda and Mishkin, Pamela and Clark, Jack and
            Krueger, Gretchen and Sutskever, Ilya},
  booktitle = {Proceedings of the 38th International Conference on Machine Learning (ICML)},
  year = {2021},
  eprint = {2103.00020},
  archivePrefix = {arXiv}
}""",
    "limber": """@inproceedings{merullo2023limber,
  title = {Linearly Mapping from Image to Text Space},
  author = {Merullo, Jack and Castricato, Louis and Eickhoff, Carsten and Pavlick, Ellie},
  booktitle = {The Eleventh International Conference on Learning Representations (ICLR)},
  year = {2023},
  eprint = {2209.15162},
  archivePrefix = {arXiv}
}""",
    "clipscore": """@inproceedings{hessel2021clipscore,
  title={CLIPScore: A Reference-free Evaluation Metric for Image Captioning},
  author={Hessel, Jack and Holtzman, Ari and Forbes, Maxwell and Le Bras, Ronan and Choi, Yejin},
  booktitle={EMNLP},
  year={2021}
}""",
    "chair": """@inproceedings{rohrbach2018object,
  title={Object Hallucination in Image Captioning},
  author={Rohrbach, Anna and Hendricks, Lisa Anne and Burns, Kaylee and Darrell, Trevor and Saenko, Kate},
  booktitle={EMNLP},
  year={2018}
}""",
    "cider": """@inproceedings{vedantam2015cider,
  title={CIDEr: Consensus-based Image Description Evaluation},
  author={Vedantam, Ramakrishna and Zitnick, C. Lawrence and Parikh, Devi},
  booktitle={CVPR},
  year={2015}
}""",
    "vqa": """@inproceedings{antol2015vqa,
  title={VQA: Visual Question Answering},
  author={Antol, Stanislaw and Agrawal, Aishwarya and Lu, Jiasen and Mitchell, Margaret and Batra, Dhruv
          and Zitnick, C. Lawrence and Parikh, Devi},
  booktitle={ICCV},
  year={2015}
}""",
    "vqa-v2": """@inproceedings{goyal2017making,
  title={Making the V in VQA Matter: Elevating the Role of Image Understanding in Visual Question Answering},
  author={Goyal, Yash and Khot, Tejas and Summers-Stay, Douglas and Batra, Dhruv and Parikh, Devi},
  booktitle={CVPR},
  year={2017}
}""",
    "wu-palmer": """@inproceedings{wu1994verb,
  title={Verb Semantics and Lexical Selection},
  author={Wu, Zhibiao and Palmer, Martha},
  booktitle={ACL},
  year={1994}
}""",
}
